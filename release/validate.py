"""`release validate`: check a release folder against its manifest, its grid, its schema, and itself.

Every derived column is re-derived and compared (``correct`` and ``prob_gold`` from ``probs``, ``pred`` and the
gold label; seeds and checkpoint against ``run_id``; instance ids against ``instance_index``), probabilities
must be finite and sum to 1, every run must cover every instance exactly once in the format's sort order,
labels must match ``instance_hash`` where the text is present and the manifest's label names, and no two runs
may be copies (identical stored probabilities, recomputed from the data; for a full-precision release the
manifest's run fingerprints must equal the data's). Files are opened as regular files only, non-blocking.
Predictions are read one row group at a time, so memory stays bounded at full scale.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..loaders import schema
from ..loaders.manifest import read_manifest, sha256_file

_MAX_LISTED = 10
# Probabilities are stored at float16 precision: each value is within 2.5e-4 (relative 2^-11) of the model's.
_TOLERANCE = 2e-3


class _Problems:
    """Problems of one file, each kind counted once with its first example."""

    def __init__(self, rel: str):
        self.rel = rel
        self.kinds: dict[str, list] = {}

    def add(self, kind: str, count: int, example: str) -> None:
        if count:
            entry = self.kinds.setdefault(kind, [0, example])
            entry[0] += count

    def lines(self) -> list[str]:
        return [f"{self.rel}: {kind} ({n} row(s); first: {example})" for kind, (n, example) in self.kinds.items()]


def validate_release(folder: str | Path) -> list[str]:
    """Return every problem found (empty when the release is valid)."""
    folder = Path(folder)
    if folder.name == schema.MANIFEST_PATH and folder.is_file():  # the manifest itself was named
        folder = folder.parent
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        return [str(exc)]
    problems: list[str] = []
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
    for rel in sorted(on_disk - set(manifest["files"])):
        problems.append(f"{rel}: not listed in manifest.json")
    for rel, entry in sorted(manifest.get("attachments", {}).items()):
        try:
            if sha256_file(folder / rel) != entry["sha256"]:
                problems.append(f"{rel}: sha256 differs from manifest.json (file changed or corrupted)")
        except (ValueError, OSError):
            problems.append(f"{rel}: listed in manifest.json attachments but missing or not a regular file")
    for rel, entry in sorted(manifest["files"].items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: listed in manifest.json but missing or not a regular file")
            continue
        try:
            digest = sha256_file(path)
        except ValueError as exc:
            problems.append(f"{rel}: {str(exc).split(': ', 1)[-1]}")
            continue
        if digest != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from manifest.json (file changed or corrupted)")
        else:
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
            except (OSError, pa.ArrowException):
                problems.append(f"{rel}: not a readable parquet file")
                continue
            if rows != entry["rows"]:
                problems.append(f"{rel}: {rows} rows, manifest.json says {entry['rows']}")
    if problems:
        return problems
    for task, entry in sorted(manifest["tasks"].items()):
        problems += _check_task(folder, task, entry, manifest.get("probability_precision", ""))
    return problems


def _check_instances(folder: Path, task: str, entry: dict) -> tuple[list[str], pa.Table | None]:
    rel = f"instances/{task}/"
    try:
        table = pa.concat_tables([pq.read_table(folder / schema.instances_path(task, s)).replace_schema_metadata(None)
                                  for s in entry["eval_sets"]])
    except (OSError, pa.ArrowException) as exc:
        return [f"{rel}: cannot read the instances ({str(exc).splitlines()[0][:120]})"], None
    if table.schema != schema.INSTANCES:
        return [f"{rel}: schema differs from loaders.schema.INSTANCES"], None
    problems = _Problems(rel)
    names = list(entry["label_names"]) + list(entry.get("collapsed_labels", {}))
    label = table.column("label").to_numpy()
    bad = (label < 0) | (label >= len(names))
    problems.add(f"field 'label' outside the {len(names)} label names {names}", int(bad.sum()),
                 f"row {int(np.argmax(bad))}" if bad.any() else "")
    expected = np.array(names, dtype=object)[np.clip(label, 0, len(names) - 1)]
    mismatch = expected != table.column("label_name").to_numpy(zero_copy_only=False)
    problems.add("field 'label_name' disagrees with the manifest's label_names[label]", int(mismatch.sum()),
                 f"row {int(np.argmax(mismatch))}" if mismatch.any() else "")
    text_a = table.column("text_a").to_pylist()
    with_text = [k for k, t in enumerate(text_a) if t is not None]
    if with_text:  # one hash per instance: a loop over instances, run once per release
        text_b, label_name, digest = (table.column(c).to_pylist() for c in ("text_b", "label_name", "instance_hash"))
        wrong = [k for k in with_text if schema.instance_hash(text_a[k], text_b[k], label_name[k]) != digest[k]]
        problems.add("field 'instance_hash' does not match the text and label", len(wrong),
                     f"row {wrong[0]}" if wrong else "")
    keys = pc.binary_join_element_wise(table.column("eval_set"), table.column("instance_id"), "\x1f")
    problems.add("duplicate (eval_set, instance_id)", table.num_rows - pc.count_distinct(keys).as_py(), "-")
    sets, counts = np.unique(table.column("eval_set").to_numpy(zero_copy_only=False), return_counts=True)
    found = dict(zip(sets.tolist(), counts.tolist()))
    out = problems.lines()
    if found != entry["eval_sets"]:
        out.append(f"{rel}: evaluation sets {found} differ from manifest.json's {entry['eval_sets']}")
    return out, table


def _check_task(folder: Path, task: str, entry: dict, manifest_precision: str) -> list[str]:
    problems, instances = _check_instances(folder, task, entry)
    if instances is None:
        return problems
    full_precision = manifest_precision == "float32"
    fingerprints = entry.get("run_fingerprints", {})
    gold_mask = schema.gold_class_mask(entry["label_names"], entry.get("collapsed_labels", {}))
    for eval_set in entry["eval_sets"]:
        inst = instances.filter(pc.equal(instances.column("eval_set"), eval_set))
        seen: dict[bytes, str] = {}
        for size, g in entry["grid"].items():
            rel = schema.predictions_path(task, eval_set, size)
            expected = {schema.run_id(size, p, f, c) for p in g["pretrain_seeds"] for f in g["finetune_seeds"]
                        for c in g["checkpoints"]}
            path = folder / rel
            if not path.is_file():
                problems.append(f"{rel}: missing; expected {len(expected)} runs of {size} on {eval_set}")
                continue
            if pq.ParquetFile(path).schema_arrow != schema.PREDICTIONS:
                problems.append(f"{rel}: schema differs from loaders.schema.PREDICTIONS")
                continue
            runs, file_problems = _check_predictions(path, rel, task, eval_set, size, inst, gold_mask)
            problems += file_problems
            present = set(runs)
            missing = sorted(expected - present)
            if missing:
                listed = ", ".join(missing[:_MAX_LISTED]) + (f" and {len(missing) - _MAX_LISTED} more"
                                                             if len(missing) > _MAX_LISTED else "")
                problems.append(f"{rel}: grid incomplete, missing {len(missing)} run(s): {listed}")
            extra = sorted(present - expected)
            if extra:
                problems.append(f"{rel}: run(s) outside the manifest grid: {', '.join(extra[:_MAX_LISTED])}")
            incomplete = [r for r, (count, *_) in runs.items() if count != inst.num_rows]
            if incomplete:
                problems.append(f"{rel}: run(s) without every instance of {eval_set} exactly once: "
                                f"{', '.join(incomplete[:_MAX_LISTED])}")
            problems += _duplicates(rel, runs, seen)
            if full_precision:
                recorded = fingerprints.get(eval_set, {})
                wrong = sorted(r for r, (_, _, full) in runs.items() if recorded.get(r) != full)
                if wrong:
                    problems.append(f"{rel}: run fingerprint(s) in manifest.json differ from the data: "
                                    f"{', '.join(wrong[:_MAX_LISTED])}")
    return problems


def _check_predictions(path: Path, rel: str, task: str, eval_set: str, size: str, inst: pa.Table,
                       gold_mask: np.ndarray) -> tuple[dict[str, tuple[int, str, str]], list[str]]:
    """Re-derive every column of one predictions file, one row group at a time. Returns run_id -> (rows, sha256
    of its stored probabilities, or "" for a constant run (every instance the same probabilities), and its
    fingerprint as ``release build`` computes it) and the problems."""
    problems = _Problems(rel)
    ids = inst.column("instance_id")
    labels = inst.column("label").to_numpy()
    n = inst.num_rows
    runs: dict[str, tuple[int, str]] = {}
    hashers: dict[str, hashlib._Hash] = {}
    varies: dict[str, bool] = {}
    last_key = None
    pf = pq.ParquetFile(path)
    for g in range(pf.num_row_groups):
        t = pf.read_row_group(g)
        m = t.num_rows
        first = f"row group {g}"
        for column, value in (("task", task), ("eval_set", eval_set), ("size", size)):
            bad = int(pc.sum(pc.not_equal(t.column(column), value)).as_py() or 0)
            problems.add(f"field {column!r} is not {value!r}", bad, first)
        p, f, c, i = (t.column(k).to_numpy() for k in schema.SORT_KEYS)
        expected_ids = pc.binary_join_element_wise(
            size, pc.binary_join_element_wise("p", pc.cast(t.column("pretrain_seed"), pa.string()), ""),
            pc.binary_join_element_wise("f", pc.cast(t.column("finetune_seed"), pa.string()), ""),
            pc.binary_join_element_wise("c", pc.cast(t.column("checkpoint"), pa.string()), ""), "__")
        problems.add("seeds or checkpoint disagree with 'run_id'",
                     int(pc.sum(pc.not_equal(expected_ids, t.column("run_id"))).as_py() or 0), first)
        key = np.stack([p, f, c, i], axis=1).astype(np.int64)
        order = np.lexsort(key.T[::-1])
        unsorted = not np.array_equal(order, np.arange(m))
        if last_key is not None and m and tuple(key[0]) <= last_key:
            unsorted = True
        diffs = np.any(key[1:] != key[:-1], axis=1)
        problems.add("rows not in (pretrain_seed, finetune_seed, checkpoint, instance_index) order, or repeated",
                     int(unsorted) + int((~diffs).sum()), first)
        last_key = tuple(key[-1]) if m else last_key
        outside = (i < 0) | (i >= n)
        problems.add(f"field 'instance_index' outside the {n} instances of {eval_set}", int(outside.sum()), first)
        idx = np.clip(i, 0, max(n - 1, 0))
        wrong_id = ~np.asarray(pc.equal(t.column("instance_id"), ids.take(pa.array(idx))).to_numpy(zero_copy_only=False))
        problems.add("field 'instance_id' is not the instance at 'instance_index'", int(wrong_id.sum()), first)
        probs_list = t.column("probs").combine_chunks()
        n_classes = gold_mask.shape[1]
        lengths = pc.list_value_length(probs_list).to_numpy(zero_copy_only=False)
        if (lengths != n_classes).any():
            problems.add(f"field 'probs' does not have {n_classes} entries", int((lengths != n_classes).sum()), first)
            continue
        probs = probs_list.flatten().to_numpy(zero_copy_only=False).reshape(m, n_classes).astype(np.float64)
        finite = np.isfinite(probs).all(axis=1)
        bad = ~finite | (np.nan_to_num(probs, nan=-1).min(axis=1) < 0) | (np.abs(probs.sum(axis=1) - 1) > _TOLERANCE)
        problems.add("field 'probs' not finite, >= 0 and summing to 1", int(bad.sum()), first)
        pred = t.column("pred").to_numpy().astype(np.int64)
        bad_pred = (pred < 0) | (pred >= n_classes)
        problems.add(f"field 'pred' outside the {n_classes} classes", int(bad_pred.sum()), first)
        pred = np.clip(pred, 0, n_classes - 1)
        safe = np.where(finite[:, None], probs, 0.0)
        not_argmax = safe[np.arange(m), pred] < safe.max(axis=1) - _TOLERANCE
        problems.add("field 'pred' is not the most probable class in 'probs'", int(not_argmax.sum()), first)
        mask = gold_mask[labels[idx]]
        prob_gold = (safe * mask).sum(axis=1)
        problems.add("field 'prob_gold' disagrees with probs and the gold label",
                     int((np.abs(prob_gold - t.column("prob_gold").to_numpy()) > _TOLERANCE).sum()), first)
        correct = mask[np.arange(m), pred].astype(np.int8)
        problems.add("field 'correct' disagrees with pred and the gold label",
                     int((correct != t.column("correct").to_numpy()).sum()), first)
        run_ids = t.column("run_id").to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.r_[True, run_ids[1:] != run_ids[:-1]])
        raw = probs_list.flatten().to_numpy(zero_copy_only=False)
        for a, b in zip(starts, np.r_[starts[1:], m]):  # a loop over runs, not instances
            run = str(run_ids[a])
            block = raw[a * n_classes : b * n_classes]
            hashers.setdefault(run, hashlib.sha256()).update(block.tobytes())
            varies[run] = varies.get(run, False) or bool((block.reshape(-1, n_classes) != block[:n_classes]).any())
            runs[run] = (runs.get(run, (0, ""))[0] + int(b - a), "")
    out = {}
    for r, (count, _) in runs.items():
        digest = hashers[r].hexdigest()
        out[r] = (count, digest if varies[r] else "", digest[:16])
    return out, problems.lines()


def _duplicates(rel: str, runs: dict[str, tuple[int, str, str]], seen: dict[bytes, str]) -> list[str]:
    """Runs whose stored probabilities equal another run's (recomputed from the data; constant runs, which
    independent runs can share, are left out): copies, not independent runs."""
    problems = []
    for run, (_, digest, _) in sorted(runs.items()):
        if not digest:
            continue
        key = digest.encode()
        if key in seen:
            problems.append(f"{rel}: run {run} has exactly the same probabilities as {seen[key]} "
                            f"(wrong checkpoint or duplicated file?)")
        else:
            seen[key] = run
    return problems
