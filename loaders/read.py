"""Read the prediction dataset (a Hub id or a local folder) as tables and as seed-indexed tensors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from . import schema

DEFAULT_REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "sst2-cpu"


def resolve(source: str | Path, revision: str | None = None, patterns: Sequence[str] | None = None) -> Path:
    """A local folder as is; otherwise a Hub dataset id, downloaded (only ``patterns``) into the HF cache."""
    path = Path(source)
    if path.is_dir():
        if not (path / schema.MANIFEST_PATH).exists():
            raise ValueError(f"{path}: not an instdecay dataset folder (no {schema.MANIFEST_PATH})")
        return path
    if path.exists() or str(source).startswith((".", "/")) or str(source).count("/") != 1:
        raise ValueError(f"{source}: neither a dataset folder nor a Hub dataset id ('owner/name')")
    from huggingface_hub import snapshot_download

    local = snapshot_download(repo_id=str(source), repo_type="dataset", revision=revision,
                              allow_patterns=[schema.MANIFEST_PATH, *(patterns or ["*"])])
    return Path(local)


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / schema.MANIFEST_PATH).read_text(encoding="utf-8"))


def _task_entry(manifest: dict, task: str, split: str | None = None) -> dict:
    if task not in manifest["tasks"]:
        raise ValueError(f"task {task!r} not in this dataset; available: {sorted(manifest['tasks'])}")
    entry = manifest["tasks"][task]
    if split is not None and split not in entry["eval_sets"]:
        raise ValueError(f"split {split!r} not an evaluation set of {task}; available: {list(entry['eval_sets'])}")
    return entry


def _filter(sizes, pretrain_seeds, finetune_seeds, checkpoints) -> pc.Expression | None:
    expr = None
    for column, values in (("size", sizes), ("pretrain_seed", pretrain_seeds), ("finetune_seed", finetune_seeds),
                           ("checkpoint", checkpoints)):
        if values is None:
            continue
        values = [values] if isinstance(values, (str, int)) else list(values)
        term = pc.field(column).isin(values)
        expr = term if expr is None else expr & term
    return expr


def _predictions_table(folder: Path, manifest: dict, task: str, split: str, sizes, pretrain_seeds,
                       finetune_seeds, checkpoints, columns) -> pa.Table:
    entry = _task_entry(manifest, task, split)
    chosen = list(entry["sizes"]) if sizes is None else ([sizes] if isinstance(sizes, str) else list(sizes))
    unknown = set(chosen) - set(entry["grid"])
    if unknown:
        raise ValueError(f"size(s) {sorted(unknown)} not in {task}; available: {entry['sizes']}")
    paths = [folder / schema.predictions_path(task, split, s) for s in chosen]
    paths = [p for p in paths if p.exists()]
    if not paths:
        return schema.PREDICTIONS.empty_table() if columns is None else schema.PREDICTIONS.empty_table().select(columns)
    dataset = pads.dataset([str(p) for p in paths], format="parquet", schema=schema.PREDICTIONS)
    return dataset.to_table(columns=columns, filter=_filter(None, pretrain_seeds, finetune_seeds, checkpoints))


def load_predictions(
    source: str | Path,
    task: str,
    split: str,
    *,
    sizes: str | Sequence[str] | None = None,
    pretrain_seeds: int | Sequence[int] | None = None,
    finetune_seeds: int | Sequence[int] | None = None,
    checkpoints: int | Sequence[int] | None = None,
    columns: Sequence[str] | None = None,
    revision: str | None = None,
    output: Literal["pandas", "dataset", "arrow"] = "pandas",
):
    """Prediction rows of one task and evaluation set (``split``), optionally filtered.

    Only the files of the chosen sizes are read (and, from the Hub, downloaded); seed and checkpoint filters
    are pushed down to the parquet reader. Returns a pandas DataFrame, a ``datasets.Dataset`` or an Arrow table.
    """
    patterns = None
    if not Path(source).is_dir():
        chosen = ["*"] if sizes is None else ([sizes] if isinstance(sizes, str) else list(sizes))
        patterns = [schema.predictions_path(task, split, s) for s in chosen] + [schema.instances_path(task)]
    folder = resolve(source, revision, patterns)
    table = _predictions_table(folder, read_manifest(folder), task, split, sizes, pretrain_seeds,
                               finetune_seeds, checkpoints, list(columns) if columns else None)
    if output == "arrow":
        return table
    if output == "dataset":
        from datasets import Dataset
        from datasets.table import InMemoryTable

        return Dataset(InMemoryTable(table))
    if output != "pandas":
        raise ValueError(f"output: expected 'pandas', 'dataset' or 'arrow', found {output!r}")
    return table.to_pandas()


def load_instances(source: str | Path, task: str, split: str | None = None, *, revision: str | None = None,
                   glue_dir: str | Path | None = None) -> pd.DataFrame:
    """The instances table of a task (one evaluation set if ``split`` is given), in the dataset's order.

    ``glue_dir``: a local GLUE folder (``<glue_dir>/sst2/train.tsv`` ...) to join the text from when the release
    ships without it; every joined row is checked against its ``instance_hash``.
    """
    folder = resolve(source, revision, None if Path(source).is_dir() else [schema.instances_path(task)])
    _task_entry(read_manifest(folder), task, split)
    table = pads.dataset(str(folder / schema.instances_path(task)), format="parquet").to_table(
        filter=None if split is None else pc.field("eval_set") == split)
    df = table.to_pandas()
    if glue_dir is not None and df["text_a"].isna().any():
        from .glue import join_glue_text

        df = join_glue_text(df, glue_dir, task)
    return df


@dataclass(frozen=True)
class Tensor:
    """Scores of one size on one evaluation set, indexed ``[instance, pretrain seed, finetune seed(, checkpoint)]``.

    ``mask`` is True where a run exists; it is all True unless ``allow_missing=True`` let a grid with holes
    through (missing cells are NaN in ``values``).
    """

    values: np.ndarray
    instance_ids: np.ndarray
    pretrain_seeds: np.ndarray
    finetune_seeds: np.ndarray
    checkpoints: np.ndarray
    value: str
    mask: np.ndarray = field(repr=False)


def load_tensor(
    source: str | Path,
    task: str,
    split: str,
    size: str,
    *,
    value: Literal["correct", "prob_gold"] = "correct",
    checkpoints: Literal["all", "last"] | int | Sequence[int] = "all",
    pretrain_seeds: Sequence[int] | None = None,
    finetune_seeds: Sequence[int] | None = None,
    allow_missing: bool = False,
    revision: str | None = None,
) -> Tensor:
    """Load ``(n_instances, n_pretrain, n_finetune[, n_checkpoints])`` scores ready for :mod:`instdecay.evaluate`.

    Instances follow the order of the instances table; seeds and checkpoints are sorted. ``checkpoints="last"``
    (or a single int) drops the checkpoint axis. Cells are placed by their (instance, seed, checkpoint) labels,
    never by row position: a missing run or instance raises ``ValueError`` naming it, unless
    ``allow_missing=True``, which returns NaN there and a ``mask``.
    """
    if value not in ("correct", "prob_gold"):
        raise ValueError(f"value: expected 'correct' or 'prob_gold', found {value!r}")
    patterns = None if Path(source).is_dir() else [schema.predictions_path(task, split, size), schema.instances_path(task)]
    folder = resolve(source, revision, patterns)
    manifest = read_manifest(folder)
    entry = _task_entry(manifest, task, split)
    if size not in entry["grid"]:
        raise ValueError(f"size {size!r} not in {task}; available: {entry['sizes']}")
    grid = entry["grid"][size]
    if checkpoints == "last":
        wanted_ckpt, squeeze = [max(grid["checkpoints"])], True
    elif checkpoints == "all":
        wanted_ckpt, squeeze = list(grid["checkpoints"]), False
    elif isinstance(checkpoints, (int, np.integer)):
        wanted_ckpt, squeeze = [int(checkpoints)], True
    else:
        wanted_ckpt, squeeze = sorted(int(c) for c in checkpoints), False
    p_seeds = np.array(sorted(pretrain_seeds if pretrain_seeds is not None else grid["pretrain_seeds"]))
    f_seeds = np.array(sorted(finetune_seeds if finetune_seeds is not None else grid["finetune_seeds"]))
    c_values = np.array(wanted_ckpt)

    table = _predictions_table(folder, manifest, task, split, [size], p_seeds.tolist(), f_seeds.tolist(),
                               wanted_ckpt, ["pretrain_seed", "finetune_seed", "checkpoint", "instance_id", value])
    instance_ids = pads.dataset(str(folder / schema.instances_path(task)), format="parquet").to_table(
        columns=["instance_id"], filter=pc.field("eval_set") == split).column("instance_id")

    n = len(instance_ids)
    shape = (n, len(p_seeds), len(f_seeds), len(c_values))
    i = pc.index_in(table.column("instance_id"), value_set=instance_ids).to_numpy(zero_copy_only=False)
    if np.isnan(i.astype(float)).any():
        raise ValueError(f"{task}/{split}/{size}: predictions name instance ids that are not in the instances table")
    p = np.searchsorted(p_seeds, table.column("pretrain_seed").to_numpy())
    f = np.searchsorted(f_seeds, table.column("finetune_seed").to_numpy())
    c = np.searchsorted(c_values, table.column("checkpoint").to_numpy())
    flat = np.ravel_multi_index((i.astype(np.int64), p, f, c), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape)))
    if counts.max(initial=0) > 1:
        raise ValueError(f"{task}/{split}/{size}: duplicate predictions for the same (instance, seeds, checkpoint)")
    mask = (counts == 1).reshape(shape)
    if not mask.all() and not allow_missing:
        missing_runs = np.argwhere(~mask.all(axis=0))
        names = [schema.run_id(size, int(p_seeds[a]), int(f_seeds[b]), int(c_values[d])) for a, b, d in missing_runs[:10]]
        raise ValueError(f"{task}/{split}/{size}: {len(missing_runs)} run(s) missing or incomplete, e.g. "
                         f"{', '.join(names)}; pass allow_missing=True for a masked tensor")
    values = np.full(int(np.prod(shape)), np.nan, dtype=np.float32)
    values[flat] = table.column(value).to_numpy()
    values = values.reshape(shape)
    if squeeze:
        values, mask = values[..., 0], mask[..., 0]
    return Tensor(values, instance_ids.to_numpy(zero_copy_only=False), p_seeds, f_seeds, c_values, value, mask)
