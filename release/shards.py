"""Per-run prediction shards: the format that generation and importers write and `release build` collects.

Layout under a shard folder::

    <task>/task.json                                 label names, collapsed labels, evaluation sets
    <task>/instances.parquet                         the instances table (loaders.schema.INSTANCES)
    <task>/runs/<size>/<size>__p<P>__f<F>.parquet     predictions of one finetuning run, all checkpoints
    <task>/runs/<size>/<size>__p<P>__f<F>.json        its metadata (written last: a shard without it is unfinished)

Every file is written atomically (temporary file + rename), so a crash never leaves half a shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import atomic_write, atomic_write_text
from ..loaders import schema

PROB_TOLERANCE = 1e-3


class ShardError(ValueError):
    """A shard or task file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class TaskInfo:
    """Label set and evaluation sets of one task. ``collapsed_labels`` maps a gold-label name that is not a
    model class (HANS 'non-entailment') to the model classes it stands for."""

    task: str
    label_names: tuple[str, ...]
    eval_sets: tuple[str, ...]
    collapsed_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def gold_names(self) -> tuple[str, ...]:
        """Names a gold label index refers to: the model classes, then the collapsed labels."""
        return self.label_names + tuple(self.collapsed_labels)

    def gold_class_mask(self) -> np.ndarray:
        """(n_gold_names, n_classes) boolean: which model classes count as correct for each gold label."""
        return schema.gold_class_mask(self.label_names, self.collapsed_labels)

    def check(self, where: str) -> None:
        for name in (self.task, *self.eval_sets):
            if not schema.NAME_PATTERN.match(name):
                raise ShardError(f"{where}: task/eval-set name {name!r} must be letters, digits or '_'")
        if len(set(self.label_names)) != len(self.label_names) or len(self.label_names) < 2:
            raise ShardError(f"{where}: label_names must be >= 2 distinct names, found {list(self.label_names)}")
        for name, members in self.collapsed_labels.items():
            unknown = set(members) - set(self.label_names)
            if name in self.label_names or unknown or not members:
                raise ShardError(f"{where}: collapsed label {name!r} must be a new name over known classes, "
                                 f"found members {list(members)}")


@dataclass(frozen=True)
class Checkpoint:
    checkpoint: int
    epoch: float
    step: int


@dataclass(frozen=True)
class RunMeta:
    """Metadata of one finetuning run (all of its checkpoints)."""

    task: str
    family: str
    size: str
    n_params: int
    model: str
    pretrain_seed: int
    finetune_seed: int
    checkpoints: tuple[Checkpoint, ...]
    revision: str = ""
    hyperparameters: dict[str, object] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    device: str = ""
    spec_hash: str = ""
    wall_time_s: float = float("nan")  # this run's share of its process's wall time
    precision: str = ""  # "bf16" (autocast) or "fp32"; "" when not recorded
    runs_in_process: int = 1  # finetuning runs trained together (stacked) in one process
    seed_design: str = ""  # "nested" (randomness from size, pretraining and finetuning seed) or "crossed"
    stream_seeds: dict[str, int] = field(default_factory=dict)  # the seed of each random stream of this run

    @property
    def name(self) -> str:
        return schema.training_run_name(self.size, self.pretrain_seed, self.finetune_seed)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=True) + "\n"

    @classmethod
    def from_json(cls, path: Path) -> RunMeta:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw["checkpoints"] = tuple(Checkpoint(**c) for c in raw["checkpoints"])
            return cls(**raw)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ShardError(f"{path}: not valid run metadata ({exc})") from None


def write_parquet(table: pa.Table, path: Path, row_group_size: int = 1 << 20) -> None:
    """Deterministic parquet (same table -> same bytes), written atomically, with column statistics."""
    atomic_write(path, lambda tmp: pq.write_table(
        table, tmp, compression="zstd", row_group_size=max(1, row_group_size), write_statistics=True))


# ---------------------------------------------------------------- building tables


def make_predictions(
    meta: RunMeta,
    info: TaskInfo,
    checkpoint: int,
    eval_set: str,
    instance_ids: Sequence[str],
    gold: np.ndarray,
    probs: np.ndarray,
) -> pa.Table:
    """Prediction rows of one checkpoint on one evaluation set, from class probabilities (n, C) and gold
    indices into ``info.gold_names``; computes ``pred`` (argmax), ``prob_gold`` and ``correct``."""
    probs = np.asarray(probs, dtype=np.float32)
    gold = np.asarray(gold, dtype=np.int64)
    mask = info.gold_class_mask()[gold]  # (n, C) classes counted as the gold label
    pred = probs.argmax(axis=1)
    n = len(instance_ids)
    return pa.table(
        {
            "run_id": pa.array([schema.run_id(meta.size, meta.pretrain_seed, meta.finetune_seed, checkpoint)] * n),
            "task": pa.array([meta.task] * n),
            "eval_set": pa.array([eval_set] * n),
            "size": pa.array([meta.size] * n),
            "pretrain_seed": pa.array(np.full(n, meta.pretrain_seed, dtype=np.int32)),
            "finetune_seed": pa.array(np.full(n, meta.finetune_seed, dtype=np.int32)),
            "checkpoint": pa.array(np.full(n, checkpoint, dtype=np.int32)),
            "instance_id": pa.array(list(instance_ids), pa.string()),
            "pred": pa.array(pred.astype(np.int16)),
            "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), probs.shape[1]).cast(
                pa.list_(pa.float32())),
            "prob_gold": pa.array((probs * mask).sum(axis=1).astype(np.float32)),
            "correct": pa.array(mask[np.arange(n), pred].astype(np.int8)),
        },
        schema=schema.SHARD_PREDICTIONS,
    )


# ---------------------------------------------------------------- writing


def task_dir(root: Path, task: str) -> Path:
    return Path(root) / task


def write_task(root: Path, info: TaskInfo, instances: pa.Table) -> None:
    """Write ``task.json`` and ``instances.parquet`` for a task (idempotent)."""
    info.check("task")
    folder = task_dir(root, info.task)
    write_parquet(instances.select(schema.INSTANCES.names).cast(schema.INSTANCES), folder / "instances.parquet")
    payload = {"task": info.task, "label_names": list(info.label_names), "eval_sets": list(info.eval_sets),
               "collapsed_labels": {k: list(v) for k, v in info.collapsed_labels.items()}}
    atomic_write_text(folder / "task.json", json.dumps(payload, indent=2, sort_keys=True) + "\n")


def shard_paths(root: Path, meta: RunMeta) -> tuple[Path, Path]:
    folder = task_dir(root, meta.task) / "runs" / meta.size
    return folder / f"{meta.name}.parquet", folder / f"{meta.name}.json"


def write_shard(root: Path, meta: RunMeta, predictions: pa.Table) -> Path:
    """Write one run's predictions, then its metadata (the metadata file marks the shard complete)."""
    parquet_path, json_path = shard_paths(root, meta)
    write_parquet(predictions.cast(schema.SHARD_PREDICTIONS), parquet_path)
    atomic_write_text(json_path, meta.to_json())
    return parquet_path


# ---------------------------------------------------------------- reading and validation


def _instance_keys(table: pa.Table) -> pa.ChunkedArray:
    """One string per row naming its (eval_set, instance_id)."""
    return pc.binary_join_element_wise(table.column("eval_set"), table.column("instance_id"), "\x1f")


def read_task(root: Path, task: str) -> tuple[TaskInfo, pa.Table]:
    folder = task_dir(root, task)
    path = folder / "task.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        info = TaskInfo(raw["task"], tuple(raw["label_names"]), tuple(raw["eval_sets"]),
                        {k: tuple(v) for k, v in raw.get("collapsed_labels", {}).items()})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{path}: not a valid task file ({exc})") from None
    info.check(str(path))
    instances = _read_table(folder / "instances.parquet", schema.INSTANCES)
    labels = instances.column("label").to_numpy()
    if len(labels) and (labels.min() < 0 or labels.max() >= len(info.gold_names)):
        raise ShardError(f"{folder / 'instances.parquet'}: field 'label' must index {list(info.gold_names)}")
    if pc.count_distinct(_instance_keys(instances)).as_py() != instances.num_rows:
        raise ShardError(f"{folder / 'instances.parquet'}: duplicate (eval_set, instance_id) rows")
    unknown = set(instances.column("eval_set").unique().to_pylist()) - set(info.eval_sets)
    if unknown:
        raise ShardError(f"{folder / 'instances.parquet'}: eval_set(s) {sorted(unknown)} not declared in task.json")
    return info, instances


def _read_table(path: Path, expected: pa.Schema) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ShardError(f"{path}: cannot read parquet ({exc})") from None
    missing = [n for n in expected.names if n not in table.column_names]
    if missing:
        raise ShardError(f"{path}: missing column(s) {missing}; expected {expected.names}")
    try:
        return table.select(expected.names).cast(expected)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ShardError(f"{path}: column types do not match the schema ({exc})") from None


def iter_shards(root: Path, task: str) -> Iterator[tuple[Path, Path]]:
    """(parquet, json) pairs of the complete shards of a task, in sorted order."""
    for json_path in sorted((task_dir(root, task) / "runs").glob("*/*.json")):
        yield json_path.with_suffix(".parquet"), json_path


def read_shard(parquet_path: Path, json_path: Path, info: TaskInfo, instances: pa.Table) -> tuple[RunMeta, pa.Table]:
    """Read and validate one shard against its task; raise :class:`ShardError` naming the file and problem."""
    meta = RunMeta.from_json(json_path)
    where = str(parquet_path)
    if not parquet_path.exists():
        raise ShardError(f"{json_path}: its predictions file {parquet_path.name} is missing")
    if meta.task != info.task:
        raise ShardError(f"{json_path}: task {meta.task!r} does not match folder task {info.task!r}")
    if not schema.SIZE_PATTERN.match(meta.size):
        raise ShardError(f"{json_path}: size {meta.size!r} must be letters, digits, '_', '.' or '-'")
    table = _read_table(parquet_path, schema.SHARD_PREDICTIONS)
    n = table.num_rows
    if n == 0:
        raise ShardError(f"{where}: no prediction rows")

    for column, expected in (("task", meta.task), ("size", meta.size), ("pretrain_seed", meta.pretrain_seed),
                             ("finetune_seed", meta.finetune_seed)):
        values = table.column(column).unique().to_pylist()
        if values != [expected]:
            raise ShardError(f"{where}: field {column!r} must be {expected!r} on every row (run metadata), found {values[:5]}")
    checkpoints = {c.checkpoint for c in meta.checkpoints}
    found = set(table.column("checkpoint").unique().to_pylist())
    if found != checkpoints:
        raise ShardError(f"{where}: checkpoints {sorted(found)} do not match the metadata's {sorted(checkpoints)}")
    expected_ids = pc.binary_join_element_wise(
        table.column("size"),
        pc.binary_join_element_wise("p", pc.cast(table.column("pretrain_seed"), pa.string()), ""),
        pc.binary_join_element_wise("f", pc.cast(table.column("finetune_seed"), pa.string()), ""),
        pc.binary_join_element_wise("c", pc.cast(table.column("checkpoint"), pa.string()), ""), "__")
    if not pc.all(pc.equal(expected_ids, table.column("run_id"))).as_py():
        raise ShardError(f"{where}: field 'run_id' must be size__p<P>__f<F>__c<checkpoint>")

    probs_list = table.column("probs").combine_chunks()
    lengths = pc.list_value_length(probs_list).to_numpy(zero_copy_only=False)
    n_classes = len(info.label_names)
    bad = np.flatnonzero(lengths != n_classes)
    if bad.size:
        raise ShardError(f"{where}: row {bad[0]}: field 'probs' has {lengths[bad[0]]} entries, expected {n_classes} "
                         f"({', '.join(info.label_names)}); {bad.size} row(s) affected")
    probs = probs_list.flatten().to_numpy(zero_copy_only=False).reshape(n, n_classes)
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(~np.isfinite(sums) | (np.abs(sums - 1) > PROB_TOLERANCE) | (probs.min(axis=1) < 0))
    if bad.size:
        raise ShardError(f"{where}: row {bad[0]}: field 'probs' must be finite, >= 0 and sum to 1 (+-{PROB_TOLERANCE}), "
                         f"found sum {sums[bad[0]]:.6g}; {bad.size} row(s) affected")
    pred = table.column("pred").to_numpy()
    if pred.min() < 0 or pred.max() >= n_classes:
        raise ShardError(f"{where}: field 'pred' must be a class index in [0, {n_classes})")

    # Join with the instances: every row must name a known (eval_set, instance_id), once per run.
    keys = _instance_keys(table)
    position = pc.index_in(keys, value_set=_instance_keys(instances)).to_numpy(zero_copy_only=False)
    unknown = np.flatnonzero(np.isnan(position.astype(float)))
    if unknown.size:
        row = table.slice(int(unknown[0]), 1).to_pylist()[0]
        raise ShardError(f"{where}: row {unknown[0]}: unknown instance ({row['eval_set']}, {row['instance_id']}); "
                         f"{unknown.size} row(s) affected")
    run_keys = pc.binary_join_element_wise(table.column("run_id"), keys, "\x1f")
    if pc.count_distinct(run_keys).as_py() != n:
        raise ShardError(f"{where}: duplicate (run_id, eval_set, instance_id) rows")
    per_set = dict(zip(*np.unique(instances.column("eval_set").to_numpy(zero_copy_only=False), return_counts=True)))
    groups = table.group_by(["run_id", "eval_set"]).aggregate([("instance_id", "count")])
    for run, eval_set, count in zip(*(groups.column(c).to_pylist() for c in ("run_id", "eval_set", "instance_id_count"))):
        if count != per_set[eval_set]:
            raise ShardError(f"{where}: run {run} has {count} of the {per_set[eval_set]} instances of {eval_set!r}")
    gold = instances.column("label").to_numpy()[position.astype(np.int64)]
    mask = info.gold_class_mask()[gold]
    prob_gold = (probs * mask).sum(axis=1)
    if np.abs(prob_gold - table.column("prob_gold").to_numpy()).max() > PROB_TOLERANCE:
        raise ShardError(f"{where}: field 'prob_gold' disagrees with probs and the gold labels")
    if not np.array_equal(mask[np.arange(n), pred].astype(np.int8), table.column("correct").to_numpy()):
        raise ShardError(f"{where}: field 'correct' disagrees with pred and the gold labels")
    return meta, table
