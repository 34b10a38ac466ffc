"""Read the prediction dataset (a Hub id or a local folder) as tables and as seed-indexed tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..safe_read import UnsafeFile, regular_file
from . import schema
from .manifest import read_manifest, verify_file

DEFAULT_REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "sst2-cpu"


def resolve(source: str | Path, revision: str | None = None, patterns: Sequence[str] | None = None) -> Path:
    """A local folder as is; otherwise a Hub dataset id, downloaded (only ``patterns``) into the HF cache."""
    path = Path(source)
    if path.name == schema.MANIFEST_PATH and path.is_file():  # the manifest itself was named
        path = path.parent
    if path.is_dir():
        if not (path / schema.MANIFEST_PATH).exists():
            raise ValueError(f"{path}: not an instdecay dataset folder (no {schema.MANIFEST_PATH})")
        return path
    if path.exists() or str(source).startswith((".", "/")) or str(source).count("/") != 1:
        raise ValueError(f"{source}: neither a dataset folder nor a Hub dataset id ('owner/name')")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(repo_id=str(source), repo_type="dataset", revision=revision,
                                  allow_patterns=[schema.MANIFEST_PATH, *(patterns or ["*"])])
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, HTTP errors: one line, not a traceback
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ValueError(f"{source}: no such local folder, and it could not be fetched as a Hub dataset id "
                         f"({type(exc).__name__}: {reason})") from None
    return Path(local)


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
                       finetune_seeds, checkpoints, columns, verify: bool) -> pa.Table:
    entry = _task_entry(manifest, task, split)
    chosen = list(entry["sizes"]) if sizes is None else ([sizes] if isinstance(sizes, str) else list(sizes))
    unknown = set(chosen) - set(entry["grid"])
    if unknown:
        raise ValueError(f"size(s) {sorted(unknown)} not in {task}; available: {entry['sizes']}")
    paths = []
    for size in chosen:  # every size of the grid has a file per evaluation set: a missing one is an error
        rel = schema.predictions_path(task, split, size)
        paths.append(_checked(folder, rel, manifest, verify))
    dataset = pads.dataset([str(p) for p in paths], format="parquet", schema=schema.PREDICTIONS)
    return dataset.to_table(columns=columns, filter=_filter(None, pretrain_seeds, finetune_seeds, checkpoints))


def _checked(folder: Path, rel: str, manifest: dict, verify: bool) -> Path:
    """The path of a release file: a regular file (never a FIFO or device), its sha256 checked against the manifest
    (unless ``verify=False``), and its row count equal to the manifest's."""
    path = Path(folder) / rel
    if verify:
        verify_file(folder, rel, manifest)
    else:
        try:
            regular_file(path)
        except UnsafeFile as exc:
            raise ValueError(f"{exc}; listed in {schema.MANIFEST_PATH}") from None
    expected = manifest["files"].get(rel, {}).get("rows")
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0][:100]})") from None
    if expected is not None and rows != expected:
        raise ValueError(f"{path}: {rows:,} rows, {schema.MANIFEST_PATH} says {expected:,}: the file is not the one "
                         f"the manifest describes")
    return path


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
    verify: bool = True,
    manifest_sha256: str | None = None,
):
    """Prediction rows of one task and evaluation set (``split``), optionally filtered.

    Only the files of the chosen sizes are read (and, from the Hub, downloaded); seed and checkpoint filters
    are pushed down to the parquet reader. Each file's sha256 is checked against the manifest once per process
    (``verify=False`` skips it), and its row count against the manifest's. ``manifest_sha256`` pins the release:
    any other manifest is refused (the hash is in the dataset card; pin a Hub release with ``revision=`` too).
    Returns a pandas DataFrame, a ``datasets.Dataset`` or an Arrow table.
    """
    patterns = None
    if not Path(source).is_dir():
        chosen = ["*"] if sizes is None else ([sizes] if isinstance(sizes, str) else list(sizes))
        patterns = [schema.predictions_path(task, split, s) for s in chosen] + [schema.instances_path(task, split)]
    folder = resolve(source, revision, patterns)
    table = _predictions_table(folder, read_manifest(folder, manifest_sha256), task, split, sizes, pretrain_seeds,
                               finetune_seeds, checkpoints, list(columns) if columns else None, verify)
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
                   glue_dir: str | Path | None = None, text_from: str | Path | None = None,
                   verify: bool = True, manifest_sha256: str | None = None) -> pd.DataFrame:
    """The instances table of a task (one evaluation set if ``split`` is given), in the dataset's order.

    When the release ships without text, it is joined from ``text_from`` (the ``nyu-mll/glue`` dataset: a Hub id,
    or a local folder in its parquet layout) or ``glue_dir`` (a local GLUE folder: ``<glue_dir>/sst2/train.tsv``
    ...); every joined row is checked against its ``instance_hash``. ``manifest_sha256`` pins the release.
    """
    folder = resolve(source, revision, None if Path(source).is_dir() else [schema.instances_path(task, split or "*")])
    table = _instances_table(folder, read_manifest(folder, manifest_sha256), task, split, None, verify)
    df = table.to_pandas()
    if text_from is not None and df["text_a"].isna().any():
        from .glue import join_hub_text

        df = join_hub_text(df, text_from, task)
    if glue_dir is not None and df["text_a"].isna().any():
        from .glue import join_glue_text

        df = join_glue_text(df, glue_dir, task)
    return df


@dataclass(frozen=True)
class Tensor:
    """Scores of one size on one evaluation set, indexed ``[instance, pretrain seed, finetune seed(, checkpoint)]``.

    ``mask`` is True where a run exists; it is all True unless ``allow_missing=True`` let a grid with holes
    through (missing cells are NaN in ``values``). ``seed_design`` is the task's, from the manifest: ``nested``,
    ``crossed`` or ``unknown`` (pass ``"nested"`` to the statistics' ``seed_design`` only when it says nested).
    """

    values: np.ndarray
    instance_ids: np.ndarray
    pretrain_seeds: np.ndarray
    finetune_seeds: np.ndarray
    checkpoints: np.ndarray
    value: str
    mask: np.ndarray = field(repr=False)
    seed_design: str = "unknown"


def _instances_table(folder: Path, manifest: dict, task: str, split: str | None, columns, verify: bool) -> pa.Table:
    """Instances of one evaluation set, or of all of them in the manifest's order."""
    entry = _task_entry(manifest, task, split)
    tables = []
    for eval_set in [split] if split is not None else list(entry["eval_sets"]):
        path = _checked(folder, schema.instances_path(task, eval_set), manifest, verify)
        tables.append(pq.read_table(path, columns=columns).replace_schema_metadata(None))
    return pa.concat_tables(tables)


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
    verify: bool = True,
    manifest_sha256: str | None = None,
) -> Tensor:
    """Load ``(n_instances, n_pretrain, n_finetune[, n_checkpoints])`` scores ready for :mod:`instdecay.evaluate`.

    Instances follow the order of the instances table; seeds and checkpoints are sorted. ``checkpoints="last"``
    (or a single int) drops the checkpoint axis. Cells are placed by their (instance, seed, checkpoint) labels,
    never by row position: a release file in format version 2 holds one row group per finetuning run, in
    ``schema.SORT_KEYS`` order, so a complete grid is read by row groups and reshaped (the order is guaranteed
    by the file's verified sha256, or checked on the label columns with ``verify=False``); anything else is
    placed cell by cell. A missing run or instance raises ``ValueError`` naming
    it, unless ``allow_missing=True``, which returns NaN there and a ``mask``. Files are checked against the
    manifest's sha256 once per process (``verify=False`` skips it); ``manifest_sha256`` pins the release.
    """
    if value not in ("correct", "prob_gold"):
        raise ValueError(f"value: expected 'correct' or 'prob_gold', found {value!r}")
    patterns = None if Path(source).is_dir() else [schema.predictions_path(task, split, size),
                                                   schema.instances_path(task, split)]
    folder = resolve(source, revision, patterns)
    manifest = read_manifest(folder, manifest_sha256)
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

    instance_ids = _instances_table(folder, manifest, task, split, ["instance_id"], verify).column("instance_id")
    shape = (len(instance_ids), len(p_seeds), len(f_seeds), len(c_values))
    path = _checked(folder, schema.predictions_path(task, split, size), manifest, verify)
    values = _read_run_blocks(path, value, p_seeds, f_seeds, c_values, sorted(grid["checkpoints"]), shape[0], verify)
    if values is not None:
        mask = np.ones(shape, dtype=bool)
    else:  # not one complete, sorted row group per run: place every row by its labels
        keys = list(schema.SORT_KEYS)
        table = _predictions_table(folder, manifest, task, split, [size], p_seeds.tolist(), f_seeds.tolist(),
                                   wanted_ckpt, [*keys, value], False)
        values, mask = _place([table.column(k).to_numpy() for k in keys], table.column(value).to_numpy(), p_seeds,
                              f_seeds, c_values, shape, f"{task}/{split}/{size}", allow_missing, size)
    if squeeze:
        values, mask = values[..., 0], mask[..., 0]
    return Tensor(values, instance_ids.to_numpy(zero_copy_only=False), p_seeds, f_seeds, c_values, value, mask,
                  entry.get("seed_design", "unknown"))


def _read_run_blocks(path: Path, value: str, p_seeds, f_seeds, c_values, all_ckpts: list[int], n: int,
                     verified: bool) -> np.ndarray | None:
    """The tensor (n, P, F, C), read as whole row groups when the file holds one row group per finetuning run
    (column statistics: a single pretraining and finetuning seed) of exactly its checkpoints x instances; None
    otherwise, and the caller places rows one by one.

    Within a group, format version 2 stores rows in (checkpoint, instance_index) order. A file whose sha256
    matched the manifest (``verified``) is the file ``release build`` wrote in that order, so only its value
    column is read; otherwise the ``checkpoint`` and ``instance_index`` columns are read and compared too."""
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    key_cols = [names.index(k) for k in ("pretrain_seed", "finetune_seed")]
    rows = n * len(all_ckpts)
    where: dict[tuple[int, int], int] = {}
    for g in range(pf.num_row_groups):
        meta = pf.metadata.row_group(g)
        stats = [meta.column(k).statistics for k in key_cols]
        if meta.num_rows != rows or any(st is None or not st.has_min_max or st.min != st.max for st in stats):
            return None
        key = (int(stats[0].min), int(stats[1].min))
        if key in where:
            return None
        where[key] = g
    wanted = [(int(p), int(f)) for p in p_seeds for f in f_seeds]
    if not all(k in where for k in wanted) or not set(c_values.tolist()) <= set(all_ckpts):
        return None
    table = pf.read_row_groups([where[k] for k in wanted], columns=[value] if verified else
                               ["checkpoint", "instance_index", value])
    if not verified:
        k, c = len(wanted), len(all_ckpts)
        index = table.column("instance_index").to_numpy().reshape(k * c, n)
        ckpt = table.column("checkpoint").to_numpy().reshape(k, c, n)
        if not ((index == np.arange(n)).all() and (ckpt == np.array(all_ckpts)[None, :, None]).all()):
            return None
    values = table.column(value).to_numpy().reshape(len(p_seeds), len(f_seeds), len(all_ckpts), n)
    values = values[:, :, np.searchsorted(all_ckpts, c_values)].astype(np.float32)
    return np.moveaxis(values, -1, 0)


def _place(cols: list[np.ndarray], data: np.ndarray, p_seeds, f_seeds, c_values, shape: tuple[int, ...], where: str,
           allow_missing: bool, size: str) -> tuple[np.ndarray, np.ndarray]:
    """Scatter rows into the tensor by their labels; check duplicates, unknown instances and holes."""
    p, f, c, i = cols
    if i.size and (i.min() < 0 or i.max() >= shape[0]):
        raise ValueError(f"{where}: instance_index outside the {shape[0]} instances of the evaluation set")
    idx = (i.astype(np.int64), np.searchsorted(p_seeds, p), np.searchsorted(f_seeds, f), np.searchsorted(c_values, c))
    flat = np.ravel_multi_index((idx[0], idx[1], idx[2], idx[3]), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape)))
    if counts.max(initial=0) > 1:
        raise ValueError(f"{where}: duplicate predictions for the same (instance, seeds, checkpoint)")
    mask = (counts == 1).reshape(shape)
    if not mask.all() and not allow_missing:
        missing_runs = np.argwhere(~mask.all(axis=0))
        names = [schema.run_id(size, int(p_seeds[a]), int(f_seeds[b]), int(c_values[d])) for a, b, d in missing_runs[:10]]
        raise ValueError(f"{where}: {len(missing_runs)} run(s) missing or incomplete, e.g. {', '.join(names)}; pass "
                         f"allow_missing=True for a masked tensor")
    values = np.full(int(np.prod(shape)), np.nan, dtype=np.float32)
    values[flat] = data
    return values.reshape(shape), mask
