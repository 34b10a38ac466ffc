"""`release validate`: check a release folder against its manifest, its grid and its schema."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..loaders import schema
from .build import sha256_file

_MAX_LISTED = 10


def _read_manifest(folder: Path) -> dict:
    path = folder / schema.MANIFEST_PATH
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the manifest ({exc})") from None


def load_back(folder: Path, manifest: dict) -> None:
    """Load every config with ``datasets.load_dataset`` and compare row counts with the manifest."""
    from datasets import load_dataset

    from .card import configs

    for config in configs(manifest):
        ds = load_dataset(str(folder), config["config_name"])
        for entry in config["data_files"]:
            expected = sum(f["rows"] for p, f in manifest["files"].items()
                           if Path(p).match(entry["path"]))
            found = ds[entry["split"]].num_rows
            if found != expected:
                raise ValueError(f"{folder}: config {config['config_name']!r} split {entry['split']!r} loads "
                                 f"{found} rows, the manifest says {expected}")


def validate_release(folder: str | Path) -> list[str]:
    """Return every problem found (empty when the release is valid): manifest hashes and row counts, files not
    in the manifest, schema, label sets, grid completeness (naming the missing runs) and identical probability
    vectors across runs that should differ (the symptom of evaluating the wrong checkpoint)."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    problems: list[str] = []
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
    for rel in sorted(on_disk - set(manifest["files"])):
        problems.append(f"{rel}: not listed in manifest.json")
    for rel, entry in sorted(manifest["files"].items()):
        path = folder / rel
        if not path.exists():
            problems.append(f"{rel}: listed in manifest.json but missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from manifest.json (file changed or corrupted)")
        elif pq.ParquetFile(path).metadata.num_rows != entry["rows"]:
            problems.append(f"{rel}: {pq.ParquetFile(path).metadata.num_rows} rows, manifest.json says {entry['rows']}")
    if problems:
        return problems
    for task, entry in sorted(manifest["tasks"].items()):
        problems += _check_task(folder, task, entry)
    return problems


def _check_task(folder: Path, task: str, entry: dict) -> list[str]:
    problems = []
    n_classes = len(entry["label_names"])
    instances = pq.read_table(folder / schema.instances_path(task))
    if instances.schema != schema.INSTANCES:
        problems.append(f"{schema.instances_path(task)}: schema differs from loaders.schema.INSTANCES")
    probs_hashes: dict[str, dict[str, str]] = defaultdict(dict)  # eval_set -> hash -> first run
    for eval_set in entry["eval_sets"]:
        ids = instances.filter(pc.equal(instances.column("eval_set"), eval_set)).column("instance_id")
        for size, g in entry["grid"].items():
            rel = schema.predictions_path(task, eval_set, size)
            path = folder / rel
            expected = {schema.run_id(size, p, f, c) for p in g["pretrain_seeds"] for f in g["finetune_seeds"]
                        for c in g["checkpoints"]}
            if not path.exists():
                problems.append(f"{rel}: missing; expected {len(expected)} runs of {size} on {eval_set}")
                continue
            table = pq.read_table(path)
            if table.schema != schema.PREDICTIONS:
                problems.append(f"{rel}: schema differs from loaders.schema.PREDICTIONS")
                continue
            present = set(table.column("run_id").unique().to_pylist())
            missing = sorted(expected - present)
            if missing:
                listed = ", ".join(missing[:_MAX_LISTED]) + (f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else "")
                problems.append(f"{rel}: grid incomplete, missing {len(missing)} run(s): {listed}")
            extra = sorted(present - expected)
            if extra:
                problems.append(f"{rel}: run(s) outside the manifest grid: {', '.join(extra[:_MAX_LISTED])}")
            pred = table.column("pred").to_numpy()
            if pred.size and (pred.min() < 0 or pred.max() >= n_classes):
                problems.append(f"{rel}: field 'pred' outside the {n_classes} labels {entry['label_names']}")
            if not pc.all(pc.is_in(table.column("instance_id"), value_set=ids)).as_py():
                problems.append(f"{rel}: instance ids not in instances/{task}.parquet for {eval_set}")
            problems += _duplicate_runs(rel, table, probs_hashes[eval_set])
    return problems


def _duplicate_runs(rel: str, table: pa.Table, seen: dict[str, str]) -> list[str]:
    """Flag runs whose probability vectors are identical to another run's (rows of a run are contiguous)."""
    problems = []
    run_ids = table.column("run_id").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, run_ids[1:] != run_ids[:-1]])
    ends = np.r_[starts[1:], len(run_ids)]
    probs = table.column("probs").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    width = len(probs) // max(len(run_ids), 1)
    for start, end in zip(starts, ends):  # a loop over runs, not instances
        digest = hashlib.sha256(probs[start * width : end * width].tobytes()).hexdigest()
        run = run_ids[start]
        if digest in seen:
            problems.append(f"{rel}: run {run} has exactly the same probabilities as {seen[digest]} "
                            f"(wrong checkpoint or duplicated file?)")
        else:
            seen[digest] = run
    return problems
