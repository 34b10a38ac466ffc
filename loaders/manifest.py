"""The dataset's ``manifest.json`` (structure checked field by field) and the sha256 integrity of its files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import schema


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict:
    """The dataset's ``manifest.json``, checked field by field (a malformed manifest is one clear error)."""
    path = Path(folder) / schema.MANIFEST_PATH
    try:
        raw = json.loads(path.read_bytes()[: 64 << 20].decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: cannot read the manifest ({type(exc).__name__})") from None
    check_manifest(raw, path)
    return raw


def _expect(ok: bool, path: Path, where: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{path}: {where}: expected {what}")


def _is_int_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def check_manifest(raw: object, path: Path) -> None:
    """Raise ``ValueError`` naming the first field of ``raw`` that does not have the manifest's structure."""
    _expect(isinstance(raw, dict), path, "top level", "a JSON object")
    version = raw.get("format_version")
    if version != schema.FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version!r}; this instdecay reads {schema.FORMAT_VERSION}: rebuild "
                         f"the release with `instdecay release build` (or use the instdecay version that wrote it)")
    _expect(isinstance(raw.get("tasks"), dict) and raw["tasks"], path, "tasks", "a non-empty object")
    _expect(isinstance(raw.get("files"), dict), path, "files", "an object of file entries")
    for rel, entry in raw["files"].items():
        where = f"files.{rel}"
        _expect(isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
                and all(isinstance(entry.get(k), int) and entry[k] >= 0 for k in ("rows", "bytes")),
                path, where, "sha256 (64 hex digits), rows and bytes")
        _expect(not Path(rel).is_absolute() and ".." not in Path(rel).parts, path, where, "a path inside the dataset")
    for task, entry in raw["tasks"].items():
        where = f"tasks.{task}"
        _expect(bool(schema.NAME_PATTERN.match(str(task))) and isinstance(entry, dict), path, where, "a task object")
        labels = entry.get("label_names")
        _expect(isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels)
                and len(set(labels)) == len(labels), path, f"{where}.label_names", ">= 2 distinct names")
        collapsed = entry.get("collapsed_labels", {})
        _expect(isinstance(collapsed, dict) and all(isinstance(v, list) and set(v) <= set(labels)
                                                    for v in collapsed.values()),
                path, f"{where}.collapsed_labels", "an object of label-name lists")
        sets = entry.get("eval_sets")
        _expect(isinstance(sets, dict) and sets and all(schema.NAME_PATTERN.match(str(k)) and isinstance(v, int)
                                                        for k, v in sets.items()),
                path, f"{where}.eval_sets", "an object of evaluation-set sizes")
        grid = entry.get("grid")
        _expect(isinstance(grid, dict) and isinstance(entry.get("sizes"), list) and set(entry["sizes"]) == set(grid),
                path, f"{where}.sizes", "the sizes of its grid")
        for size, g in grid.items():
            _expect(bool(schema.SIZE_PATTERN.match(str(size))) and isinstance(g, dict)
                    and all(_is_int_list(g.get(k)) and g[k] for k in ("pretrain_seeds", "finetune_seeds", "checkpoints"))
                    and isinstance(g.get("n_params"), int),
                    path, f"{where}.grid.{size}", "n_params and non-empty integer lists of seeds and checkpoints")


_VERIFIED: set[tuple[str, int, int, str]] = set()


def verify_file(folder: Path, rel: str, manifest: dict) -> Path:
    """The path of ``rel`` after checking its sha256 against the manifest, once per file and process (a file
    changed since, by size or modification time, is checked again). Raise ``ValueError`` on a mismatch."""
    path = Path(folder) / rel
    entry = manifest["files"].get(rel)
    if entry is None:
        raise ValueError(f"{path}: not listed in {schema.MANIFEST_PATH}")
    try:
        st = path.stat()
    except OSError:
        raise ValueError(f"{path}: listed in {schema.MANIFEST_PATH} but missing") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, entry["sha256"])
    if key not in _VERIFIED:
        if sha256_file(path) != entry["sha256"]:
            raise ValueError(f"{path}: sha256 differs from {schema.MANIFEST_PATH}: the file was changed or corrupted; "
                             f"download it again (verify=False skips this check)")
        _VERIFIED.add(key)
    return path
