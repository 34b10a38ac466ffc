"""`release build`: collect per-run shards into the Hub layout, write the manifest and card, load it back."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .. import __version__
from ..atomic import atomic_write_text
from ..loaders import schema
from ..loaders.manifest import sha256_file
from ..safe_read import UnsafeFile, read_bytes_capped
from .card import (DEFAULT_REPO_ID, EVAL_PATH, LICENSE_PATH, card_meta_from, dataset_info, eval_yaml, license_file,
                   render_card)
from .shards import RunMeta, ShardError, TaskInfo, iter_shards, read_shard, read_task, write_parquet


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    n_runs: int
    n_rows: int
    manifest: dict


def _sorted_predictions(tables: list[pa.Table], instances: pa.Table, eval_set: str) -> pa.Table:
    """Rows of one (task, eval set, size) in the release schema: ``instance_index`` added, sorted by
    ``schema.SORT_KEYS`` (runs contiguous, each in instance order)."""
    table = pa.concat_tables(tables)
    table = table.filter(pc.equal(table.column("eval_set"), eval_set))
    inst = instances.filter(pc.equal(instances.column("eval_set"), eval_set))
    index = pc.index_in(table.column("instance_id"), value_set=inst.column("instance_id")).cast(pa.int32())
    table = table.add_column(schema.PREDICTIONS.get_field_index("instance_index"), "instance_index", index)
    keys = [table.column(c).to_numpy() for c in reversed(schema.SORT_KEYS)]
    return table.take(np.lexsort(keys)).cast(schema.PREDICTIONS)


def run_fingerprints(table: pa.Table) -> dict[str, str]:
    """run_id -> sha256 (16 hex digits) of its probabilities at full precision, for a table sorted by
    ``schema.SORT_KEYS``: lets ``release validate`` tell copied runs from runs equal only after rounding."""
    run_ids = table.column("run_id").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, run_ids[1:] != run_ids[:-1]])
    ends = np.r_[starts[1:], len(run_ids)]
    probs = table.column("probs").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    width = len(probs) // max(len(run_ids), 1)
    return {str(run_ids[a]): hashlib.sha256(probs[a * width : b * width].tobytes()).hexdigest()[:16]
            for a, b in zip(starts, ends)}  # a loop over runs, not instances


def _run_rows(meta: RunMeta, table: pa.Table) -> list[dict]:
    """One ``runs`` row per checkpoint of a finetuning run, with accuracy per evaluation set."""
    acc = table.group_by(["checkpoint", "eval_set"]).aggregate([("correct", "mean")])
    by_ckpt: dict[int, list[dict]] = defaultdict(list)
    for ckpt, eval_set, value in zip(*(acc.column(c).to_pylist() for c in ("checkpoint", "eval_set", "correct_mean"))):
        by_ckpt[ckpt].append({"eval_set": eval_set, "accuracy": value})
    rows = []
    for c in meta.checkpoints:
        rows.append({
            "run_id": schema.run_id(meta.size, meta.pretrain_seed, meta.finetune_seed, c.checkpoint),
            "task": meta.task, "family": meta.family, "size": meta.size, "n_params": meta.n_params,
            "model": meta.model, "revision": meta.revision, "pretrain_seed": meta.pretrain_seed,
            "finetune_seed": meta.finetune_seed, "checkpoint": c.checkpoint, "epoch": c.epoch, "step": c.step,
            "hyperparameters": json.dumps(meta.hyperparameters, sort_keys=True),
            "versions": json.dumps(meta.versions, sort_keys=True), "device": meta.device,
            "spec_hash": meta.spec_hash, "wall_time_s": meta.wall_time_s, "precision": meta.precision,
            "runs_in_process": meta.runs_in_process, "seed_design": meta.seed_design,
            "stream_seeds": json.dumps(meta.stream_seeds, sort_keys=True),
            "accuracy": sorted(by_ckpt[c.checkpoint], key=lambda r: r["eval_set"]),
        })
    return rows


def _grid(metas: list[RunMeta]) -> dict[str, dict]:
    grid: dict[str, dict] = {}
    for size in sorted({m.size for m in metas}, key=lambda s: min(m.n_params for m in metas if m.size == s)):
        runs = [m for m in metas if m.size == size]
        grid[size] = {
            "family": runs[0].family,
            "n_params": runs[0].n_params,
            "pretrain_seeds": sorted({m.pretrain_seed for m in runs}),
            "finetune_seeds": sorted({m.finetune_seed for m in runs}),
            "checkpoints": sorted({c.checkpoint for m in runs for c in m.checkpoints}),
            "n_runs": len(runs),
        }
    return grid


def with_class_labels(table: pa.Table, class_labels: dict[str, tuple[str, ...]]) -> pa.Table:
    """The table with Hugging Face ``datasets`` features in its schema metadata, so that ``load_dataset`` shows
    label columns as ``ClassLabel`` (names, not bare integers); the Arrow columns themselves are unchanged."""
    from datasets import ClassLabel, Features

    features = Features.from_arrow_schema(table.schema)
    for column, names in class_labels.items():
        features[column] = ClassLabel(names=list(names))
    metadata = {b"huggingface": json.dumps({"info": {"features": features.to_dict()}}).encode()}
    return table.replace_schema_metadata(metadata)


def _half_precision(table: pa.Table) -> pa.Table:
    """Round ``probs`` and ``prob_gold`` to float16 precision (stored as float32): about 3 significant digits,
    rounding error <= 2.5e-4 per value, and 4x smaller files. ``pred`` and ``correct`` keep the model's own
    full-precision decisions."""
    probs = table.column("probs").combine_chunks()
    rounded = probs.flatten().to_numpy(zero_copy_only=False).astype(np.float16).astype(np.float32)
    probs = pa.ListArray.from_arrays(probs.offsets, pa.array(rounded), type=probs.type)
    gold = table.column("prob_gold").to_numpy().astype(np.float16).astype(np.float32)
    table = table.set_column(table.schema.get_field_index("probs"), "probs", probs)
    return table.set_column(table.schema.get_field_index("prob_gold"), "prob_gold", pa.array(gold))


def _without_text(instances: pa.Table) -> pa.Table:
    """Null the text columns (kept: ids, labels and instance_hash, which proves what was scored)."""
    for column in ("text_a", "text_b"):
        instances = instances.set_column(instances.schema.get_field_index(column), column,
                                         pa.nulls(instances.num_rows, pa.string()))
    return instances


def build_release(shards_root: str | Path, out_dir: str | Path, *, include_text: bool = True,
                  analysis: bool = True, card_meta: str | Path | None = None, full_precision: bool = False,
                  progress: bool = True) -> BuildResult:
    """Build the dataset folder ``out_dir`` from the shards under ``shards_root``.

    Writes into a temporary sibling folder, validates it by loading every config back with
    ``datasets.load_dataset``, then swaps it into place, so a crash never leaves a half-written release.
    Building twice from the same shards gives byte-identical files. ``card_meta`` (default: ``release.json``
    beside the task folders, if present) is a JSON file of card fields (``pretty_name``, ``description``, ``license``, ``tags``, ``repo_id``,
    ``analysis``). Probabilities are stored at float16 precision unless ``full_precision``. ``include_text=False`` leaves instance text out of the release (third-party text that may
    not be redistributed); ids, labels and ``instance_hash`` stay. ``analysis`` adds the paper's analyses of
    every task and evaluation set to the card (needs >= 2 sizes).
    """
    shards_root, out_dir = Path(shards_root), Path(out_dir)
    tasks = sorted(p.parent.name for p in shards_root.glob("*/task.json"))
    if not tasks:
        raise ShardError(f"{shards_root}: no task folders (expected <task>/task.json)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.building-"))
    try:
        meta_path = Path(card_meta) if card_meta else shards_root / "release.json"
        if card_meta and not meta_path.exists():
            raise ShardError(f"{meta_path}: card metadata file not found")
        manifest = _write_release(shards_root, tasks, staging, include_text, analysis, meta_path, full_precision,
                                  progress)
        load_back(staging, manifest)
        backup = out_dir.with_name(f".{out_dir.name}.previous")
        if out_dir.exists():
            shutil.rmtree(backup, ignore_errors=True)
            out_dir.rename(backup)
        staging.chmod(0o755)  # mkdtemp makes it private; a release is meant to be read
        staging.rename(out_dir)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    n_runs = sum(len(t["runs"]) for t in manifest["tasks"].values())
    n_rows = sum(f["rows"] for p, f in manifest["files"].items() if p.startswith("data/"))
    return BuildResult(out_dir, n_runs, n_rows, manifest)


def load_back(folder: Path, manifest: dict) -> None:
    """Load every config with ``datasets.load_dataset`` and compare row counts with the manifest."""
    from datasets import load_dataset

    from .card import configs

    with tempfile.TemporaryDirectory(prefix="instdecay-load-back-") as cache:  # not the user's datasets cache
        for config in configs(manifest):
            ds = load_dataset(str(folder), config["config_name"], cache_dir=cache)
            for entry in config["data_files"]:
                expected = sum(f["rows"] for p, f in manifest["files"].items() if Path(p).match(entry["path"]))
                found = ds[entry["split"]].num_rows
                if found != expected:
                    raise ValueError(f"{folder}: config {config['config_name']!r} split {entry['split']!r} loads "
                                     f"{found} rows, the manifest says {expected}")


def _write_release(shards_root: Path, tasks: list[str], out: Path, include_text: bool, analysis: bool,
                   meta_path: Path, full_precision: bool, progress: bool) -> dict:
    run_rows: list[dict] = []
    task_entries: dict[str, dict] = {}
    for task in tasks:
        info, instances = read_task(shards_root, task)
        per_size: dict[str, list[pa.Table]] = defaultdict(list)
        metas: list[RunMeta] = []
        pairs = list(iter_shards(shards_root, task))
        if not pairs:
            raise ShardError(f"{shards_root / task}: no complete shards under runs/")
        for parquet_path, json_path in tqdm(pairs, desc=f"reading {task} shards", disable=not progress):
            meta, table = read_shard(parquet_path, json_path, info, instances)
            metas.append(meta)
            per_size[meta.size].append(table)
            run_rows.extend(_run_rows(meta, table))
        grid = _grid(metas)
        fingerprints: dict[str, dict[str, str]] = {}
        for eval_set in info.eval_sets:
            for size in grid:
                table = _sorted_predictions(per_size[size], instances, eval_set)
                if table.num_rows:
                    fingerprints.setdefault(eval_set, {}).update(run_fingerprints(table))
                    table = table if full_precision else _half_precision(table)
                    n_set = int(pc.sum(pc.equal(instances.column("eval_set"), eval_set)).as_py())
                    # one row group per finetuning run (all its checkpoints): loaders.read reads tensors by groups
                    write_parquet(with_class_labels(table, {"pred": info.label_names}),
                                  out / schema.predictions_path(task, eval_set, size),
                                  row_group_size=n_set * len(grid[size]["checkpoints"]))
        released = instances if include_text else _without_text(instances)
        for eval_set in info.eval_sets:
            part = released.filter(pc.equal(released.column("eval_set"), eval_set))
            write_parquet(with_class_labels(part, {"label": info.gold_names}), out / schema.instances_path(task, eval_set))
        task_runs = pa.Table.from_pylist(sorted((r for r in run_rows if r["task"] == task), key=lambda r: r["run_id"]),
                                         schema=schema.RUNS)
        write_parquet(task_runs, out / schema.runs_path(task))
        task_entries[task] = _task_entry(info, instances, grid, metas) | {"run_fingerprints": fingerprints}
    runs = pa.Table.from_pylist(sorted(run_rows, key=lambda r: (r["task"], r["run_id"])), schema=schema.RUNS)

    files = {}
    for path in sorted(out.rglob("*.parquet")):
        rel = path.relative_to(out).as_posix()
        files[rel] = {"sha256": sha256_file(path), "rows": pq.ParquetFile(path).metadata.num_rows,
                      "bytes": path.stat().st_size}
    meta = card_meta_from(meta_path)
    manifest = {"format_version": schema.FORMAT_VERSION, "built_with": f"instdecay {__version__}",
                "repo_id": meta.get("repo_id", DEFAULT_REPO_ID),
                "probability_precision": "float32" if full_precision else "float16 (stored as float32)",
                "tasks": task_entries, "files": files}
    attachments = _copy_attachments(meta.get("attachments", {}), meta_path, out)
    if attachments:
        manifest["attachments"] = attachments
    atomic_write_text(out / schema.MANIFEST_PATH, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / EVAL_PATH, eval_yaml(manifest, meta))
    if analysis:
        from .analysis import analysis_markdown

        meta["analysis"] = meta.get("analysis", "") + analysis_markdown(out, manifest, progress=progress)
    atomic_write_text(out / schema.CARD_PATH, render_card(manifest, runs, meta=meta, info=dataset_info(out, manifest),
                                                          manifest_hash=sha256_file(out / schema.MANIFEST_PATH)))
    atomic_write_text(out / LICENSE_PATH, license_file())
    return manifest


MAX_ATTACHMENT_BYTES = 16 << 20


def _copy_attachments(attachments: object, meta_path: Path, out: Path) -> dict[str, dict]:
    """Copy the card metadata's ``attachments`` ({path in the release: file relative to the card metadata}, e.g.
    the published training-pool rows) into the release; their sha256 and size go into the manifest."""
    if not isinstance(attachments, dict):
        raise ShardError(f"{meta_path}: 'attachments' must map paths in the release to files")
    entries = {}
    for rel, source in sorted(attachments.items()):
        target = PurePosixPath(str(rel))
        if (target.is_absolute() or ".." in target.parts or target.parts[0] in ("data", "instances", "runs")
                or target.suffix == ".parquet" or str(target) in (schema.MANIFEST_PATH, schema.CARD_PATH)):
            raise ShardError(f"{meta_path}: attachment {rel!r} must be a new path inside the release, outside data/, "
                             f"instances/ and runs/, and not a parquet file")
        try:
            data = read_bytes_capped(meta_path.parent / str(source), MAX_ATTACHMENT_BYTES, follow_symlinks=True)
        except (UnsafeFile, OSError) as exc:
            raise ShardError(f"{meta_path}: attachment {rel!r}: cannot read {source} ({exc})") from None
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        (out / target).write_bytes(data)
        entries[str(target)] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return entries


def _task_entry(info: TaskInfo, instances: pa.Table, grid: dict, metas: list[RunMeta]) -> dict:
    sets, counts = np.unique(instances.column("eval_set").to_numpy(zero_copy_only=False), return_counts=True)
    count = dict(zip(sets.tolist(), counts.tolist()))
    return {
        "label_names": list(info.label_names),
        "collapsed_labels": {k: list(v) for k, v in info.collapsed_labels.items()},
        "eval_sets": {s: count.get(s, 0) for s in info.eval_sets},
        "sizes": list(grid),  # smallest to largest (by parameter count); JSON objects are key-sorted
        "grid": grid,
        "runs": sorted(m.name for m in metas),
        "seed_design": seed_design(metas),
    }


def seed_design(metas: list[RunMeta]) -> str:
    """The task's seed design, when every run recorded the same one; else "unknown" (analyses then assume
    finetuning seeds may be crossed)."""
    designs = {m.seed_design for m in metas}
    return designs.pop() if len(designs) == 1 and designs <= {"nested", "crossed"} else "unknown"
