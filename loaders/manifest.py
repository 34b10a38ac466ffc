"""The dataset's ``manifest.json`` (structure checked field by field) and the sha256 integrity of its files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..safe_read import UnsafeFile, open_regular, read_bytes_capped, regular_file
from . import schema


MAX_MANIFEST_BYTES = 64 << 20
# Bounds on the manifest's numbers: a count or size beyond them is not a real dataset's.
MAX_COUNT = 1 << 40
MAX_PARAMS = 10**13
MAX_SEED = 2**31 - 1


def sha256_file(path: Path) -> str:
    """sha256 of a regular file (opened non-blocking: a FIFO in its place is an error, not a hang)."""
    h = hashlib.sha256()
    with os.fdopen(open_regular(path, max_bytes=1 << 62, follow_symlinks=True), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads`` hook: a JSON object whose keys repeat is refused (the last would silently win)."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate key(s) {duplicated[:3]}")
    return dict(pairs)


def read_manifest(folder: Path, manifest_sha256: str | None = None) -> dict:
    """The dataset's ``manifest.json``, checked field by field (a malformed manifest is one clear error); with
    ``manifest_sha256``, only the manifest with that hash (a pin on exactly what was loaded)."""
    path = Path(folder) / schema.MANIFEST_PATH
    try:
        data = read_bytes_capped(path, MAX_MANIFEST_BYTES, follow_symlinks=True)
        raw = json.loads(data.decode("utf-8"), object_pairs_hook=unique_keys)
    except UnsafeFile as exc:
        raise ValueError(f"{path}: cannot read the manifest ({str(exc).replace(f'{path}: ', '')})") from None
    except (OSError, ValueError, RecursionError) as exc:
        detail = str(exc)[:80] if isinstance(exc, ValueError) and "duplicate key" in str(exc) else type(exc).__name__
        raise ValueError(f"{path}: cannot read the manifest ({detail})") from None
    if manifest_sha256 is not None and hashlib.sha256(data).hexdigest() != manifest_sha256.lower():
        raise ValueError(f"{path}: sha256 {hashlib.sha256(data).hexdigest()[:16]}... is not the pinned "
                         f"manifest_sha256 {manifest_sha256[:16]}...: the release changed since it was pinned")
    check_manifest(raw, path)
    return raw


def manifest_sha256(folder: Path) -> str:
    """The sha256 of a release's ``manifest.json``: pin it (``manifest_sha256=``) to load exactly this release."""
    return hashlib.sha256(read_bytes_capped(Path(folder) / schema.MANIFEST_PATH, MAX_MANIFEST_BYTES,
                                            follow_symlinks=True)).hexdigest()


def _expect(ok: bool, path: Path, where: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{path}: {where}: expected {what}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int_list(value: object, limit: int = MAX_SEED) -> bool:
    return isinstance(value, list) and all(_is_int(v) and -limit <= v <= limit for v in value)


def check_manifest(raw: object, path: Path) -> None:
    """Raise ``ValueError`` naming the first field of ``raw`` that does not have the manifest's structure."""
    _expect(isinstance(raw, dict), path, "top level", "a JSON object")
    version = raw.get("format_version")
    if version != schema.FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version!r}; this instdecay reads {schema.FORMAT_VERSION}: rebuild "
                         f"the release with `instdecay release build` (or use the instdecay version that wrote it)")
    _expect(isinstance(raw.get("tasks"), dict) and raw["tasks"], path, "tasks", "a non-empty object")
    _expect(isinstance(raw.get("repo_id", "a/b"), str) and len(raw.get("repo_id", "a/b")) <= 96
            and raw.get("repo_id", "a/b").count("/") == 1, path, "repo_id", "a Hub dataset id 'owner/name'")
    _expect(isinstance(raw.get("files"), dict), path, "files", "an object of file entries")
    for rel, entry in raw["files"].items():
        where = f"files.{rel}"
        _expect(isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
                and all(_is_int(entry.get(k)) and 0 <= entry[k] <= MAX_COUNT for k in ("rows", "bytes")),
                path, where, f"sha256 (64 hex digits), rows and bytes (whole numbers up to {MAX_COUNT:,})")
        _expect(not Path(rel).is_absolute() and ".." not in Path(rel).parts, path, where, "a path inside the dataset")
    _expect(isinstance(raw.get("attachments", {}), dict), path, "attachments", "an object of file entries")
    for rel, entry in raw.get("attachments", {}).items():
        where = f"attachments.{rel}"
        _expect(isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
                and _is_int(entry.get("bytes")) and 0 <= entry["bytes"] <= MAX_COUNT,
                path, where, "sha256 (64 hex digits) and bytes")
        _expect(not Path(rel).is_absolute() and ".." not in Path(rel).parts and not rel.endswith(".parquet"),
                path, where, "a path inside the dataset (not a parquet file)")
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
        _expect(isinstance(sets, dict) and sets and all(schema.NAME_PATTERN.match(str(k)) and _is_int(v)
                                                        and 0 <= v <= MAX_COUNT for k, v in sets.items()),
                path, f"{where}.eval_sets", "an object of evaluation-set sizes")
        _expect(entry.get("seed_design", "unknown") in schema.SEED_DESIGNS, path, f"{where}.seed_design",
                f"one of {list(schema.SEED_DESIGNS)}")
        grid = entry.get("grid")
        _expect(isinstance(grid, dict) and isinstance(entry.get("sizes"), list) and set(entry["sizes"]) == set(grid),
                path, f"{where}.sizes", "the sizes of its grid")
        for size, g in grid.items():
            _expect(bool(schema.SIZE_PATTERN.match(str(size))) and isinstance(g, dict)
                    and all(_is_int_list(g.get(k)) and g[k] for k in ("pretrain_seeds", "finetune_seeds", "checkpoints"))
                    and _is_int(g.get("n_params")) and 0 <= g["n_params"] <= MAX_PARAMS,
                    path, f"{where}.grid.{size}", f"n_params (0 to {MAX_PARAMS:.0e}) and non-empty lists of seeds "
                                                  f"and checkpoints (integers within +-{MAX_SEED:,})")


def seed_design(manifest: dict, task: str) -> str:
    """The seed design the statistics may assume for a task: "nested" when its manifest says so, else "crossed"
    (valid whether finetuning seeds are crossed or nested)."""
    return "nested" if manifest["tasks"][task].get("seed_design") == "nested" else "crossed"


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
    try:
        regular_file(path)
    except UnsafeFile as exc:
        raise ValueError(str(exc)) from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, entry["sha256"])
    if key not in _VERIFIED:
        if sha256_file(path) != entry["sha256"]:
            raise ValueError(f"{path}: sha256 differs from {schema.MANIFEST_PATH}: the file was changed or corrupted; "
                             f"download it again (verify=False skips this check)")
        _VERIFIED.add(key)
    return path
