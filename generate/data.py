"""Task data for generation: load tables with Hugging Face `datasets`, slice, subsample, label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..loaders import schema
from ..release.shards import TaskInfo
from .spec import DataSource, SpecError, Task


@dataclass(frozen=True)
class Examples:
    """Rows of one table: texts (one or two fields), gold indices into ``TaskInfo.gold_names``, provenance."""

    text_a: list[str]
    text_b: list[str] | None
    gold: np.ndarray
    original_split: str
    original_ids: list[str]

    @property
    def instance_ids(self) -> list[str]:
        return [f"{self.original_split}-{i}" for i in self.original_ids]

    def __len__(self) -> int:
        return len(self.text_a)


def task_info(task: Task) -> TaskInfo:
    return TaskInfo(task.name, task.label_names, tuple(task.eval_sets), dict(task.collapsed_labels))


def _gold_indices(values: np.ndarray, info: TaskInfo, task: Task, source: DataSource, rows: np.ndarray) -> np.ndarray:
    """Labels given as class indices or as names (including collapsed names) -> indices into gold_names."""
    names = info.gold_names
    if source.label_names is not None and np.issubdtype(values.dtype, np.integer):  # the source's own label order
        if values.min(initial=0) < 0 or values.max(initial=0) >= len(source.label_names):
            bad = np.flatnonzero((values < 0) | (values >= len(source.label_names)))
            raise SpecError(f"{source.dataset} ({source.data_files or source.name}): row {int(rows[bad[0]])}: label "
                            f"{values[bad[0]]} outside its label_names {list(source.label_names)}")
        values = np.array(source.label_names)[values]
    if np.issubdtype(values.dtype, np.integer):
        bad = np.flatnonzero((values < 0) | (values >= len(task.label_names)))
        gold = values.astype(np.int64)
    else:
        uniq, inverse = np.unique(values.astype(str), return_inverse=True)
        lookup = np.array([names.index(u) if u in names else -1 for u in uniq])
        gold = lookup[inverse]
        bad = np.flatnonzero(gold < 0)
    if bad.size:
        raise SpecError(f"{source.dataset} ({source.data_files or source.name}): row {int(rows[bad[0]])}: field "
                        f"{task.label_field!r} = {values[bad[0]]!r} is not a label index or one of {list(names)}")
    return gold


def load_source(source: DataSource, task: Task) -> Examples:
    """Load, slice and subsample a data source; map labels (index or name) to gold indices."""
    from datasets import load_dataset

    kwargs = dict(source.kwargs)
    if source.data_files is not None:
        kwargs["data_files"] = source.data_files
    try:
        ds = load_dataset(source.dataset, source.name, split=source.split, **kwargs)
    except (FileNotFoundError, ValueError) as exc:
        raise SpecError(f"cannot load {source.dataset} ({source.data_files or source.name}): {exc}") from None
    missing = [f for f in (*task.text_fields, task.label_field) if f not in ds.column_names]
    if missing:
        raise SpecError(f"{source.dataset} ({source.data_files or source.name}): missing column(s) {missing}; "
                        f"found {ds.column_names}")
    rows = np.arange(len(ds))
    if source.rows_from is not None:
        rows = _split_rows(source, len(ds))
    if source.drop_labels:
        rows = rows[~np.isin(np.asarray(ds[task.label_field]), source.drop_labels)]
    if source.rows:
        rows = rows[slice(*[int(x) if x else None for x in source.rows.split(":")])]
    if source.sample is not None and source.sample < len(rows):
        rows = np.sort(np.random.default_rng(source.sample_seed).choice(rows, source.sample, replace=False))
    table = ds.select_columns([*task.text_fields, task.label_field]).select(rows)
    gold = _gold_indices(np.asarray(table[task.label_field]), task_info(task), task, source, rows)
    text_b = [str(x) for x in table[task.text_fields[1]]] if len(task.text_fields) == 2 else None
    return Examples([str(x) for x in table[task.text_fields[0]]], text_b, gold,
                    source.original_split, [str(int(r)) for r in rows])


def _split_rows(source: DataSource, n_rows: int) -> np.ndarray:
    """The rows of one part of a held-out split file, after checking that it was computed on this data file."""
    from ..loaders.manifest import sha256_file
    from .holdout import HoldoutSplit

    file, key = source.rows_from
    split = HoldoutSplit.read(file)
    if source.data_files is None or not Path(source.data_files).is_file():
        raise SpecError(f"rows_from {file}: needs data_files to name the one local file the split was computed on")
    if sha256_file(source.data_files) != split.source_sha256:
        raise SpecError(f"rows_from {file}: computed on another file than {source.data_files} (sha256 differs)")
    rows = np.asarray(split.rows(key), dtype=np.int64)
    if rows.size and rows.max() >= n_rows:
        raise SpecError(f"rows_from {file}: row {int(rows.max())} is beyond the {n_rows} rows of {source.data_files}")
    return rows


def instances_table(task: Task, eval_sets: dict[str, Examples], include_text: bool = True) -> pa.Table:
    """The instances table of every evaluation set; text omitted (null) when it may not be redistributed."""
    info = task_info(task)
    cols: dict[str, list] = {name: [] for name in schema.INSTANCES.names}
    for eval_set, ex in eval_sets.items():
        n = len(ex)
        text_b = ex.text_b or [None] * n
        label_names = [info.gold_names[g] for g in ex.gold]
        cols["task"] += [task.name] * n
        cols["eval_set"] += [eval_set] * n
        cols["instance_id"] += ex.instance_ids
        cols["original_split"] += [ex.original_split] * n
        cols["original_id"] += ex.original_ids
        cols["text_a"] += ex.text_a if include_text else [None] * n
        cols["text_b"] += text_b if include_text else [None] * n
        cols["label"] += ex.gold.tolist()
        cols["label_name"] += label_names
        cols["instance_hash"] += [schema.instance_hash(a, b, lab) for a, b, lab in zip(ex.text_a, text_b, label_names)]
    return pa.table(cols, schema=schema.INSTANCES)
