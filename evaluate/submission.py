"""Submissions: a new model's per-instance predictions on one task and split of a reference dataset.

Format: one file (parquet, CSV or JSONL) or a folder of them, with columns

``instance_id``                      an instance of the reference split
``pretrain_seed`` (optional, 0)      which pretrained checkpoint
``finetune_seed``                    which finetuning run
``checkpoint`` (optional, 0)         which checkpoint of the run (the last one is analysed)
``pred``                             a label name or index, **or** class probabilities as
``probs``                            a list column, **or** one ``prob_<label>`` column per label
``instance_hash`` (optional)         checked against the reference's hash of the same instance

and metadata (``model``, ``task``, ``split``, ``params``, ``pretrained``, ``url``, ``contact``) in a
``submission.yaml`` / ``submission.json`` beside the file (or in the folder), or passed directly. Files are
parsed as data only: nothing from a submission is executed or unpickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..loaders.read import load_instances, read_manifest, resolve
from ..loaders.schema import gold_class_mask
from .safe_read import open_regular
from .submission_io import (MAX_FILE_BYTES, MAX_LISTED, MAX_TOTAL_BYTES, Problem, SubmissionError, add_rows,
                            check_metadata, excerpt, list_files, read_table)
from .submission_io import read_metadata as read_metadata_file

METADATA_FIELDS = {"model", "task", "split", "params", "pretrained", "url", "contact", "submitted", "hub_model_id",
                   "hub_revision", "source", "runs"}
PROB_TOLERANCE = 1e-3
MAX_RUNS = 1000  # (pretraining seed, finetuning seed) pairs
MAX_CHECKPOINTS = 50


@dataclass(frozen=True)
class Submission:
    """A validated submission aligned with its reference split.

    ``correct`` / ``prob_gold`` / ``pred``: ``(n_instances, n_pretrain, n_finetune)`` at each run's last
    checkpoint, in the reference's instance order (``prob_gold`` is None when only labels were submitted).
    """

    metadata: dict[str, object]
    task: str
    split: str
    correct: np.ndarray
    prob_gold: np.ndarray | None
    pred: np.ndarray
    pretrain_seeds: np.ndarray
    finetune_seeds: np.ndarray
    instance_ids: np.ndarray
    files: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.metadata.get("model", "submission"))

    @property
    def n_runs(self) -> int:
        return self.correct.shape[1] * self.correct.shape[2]


SUBMISSION_PATTERNS = ["*.parquet", "*.csv", "*.jsonl", "submission.yaml", "submission.yml", "submission.json"]


def resolve_submission(path: str | Path) -> Path:
    """A local submission file or folder as is; otherwise a Hub dataset id of one submission, downloaded (its
    prediction files and submission.yaml only) into the Hugging Face cache."""
    local = Path(path)
    if local.exists() or local.is_symlink():
        return local
    text = str(path)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError

        try:
            return Path(snapshot_download(repo_id=text, repo_type="dataset", allow_patterns=SUBMISSION_PATTERNS))
        except (HFValidationError, OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ValueError(f"{text}: no such local file or folder, and it could not be fetched as a Hub dataset "
                             f"id ({reason})") from None
        except Exception as exc:  # noqa: BLE001 - network errors of the HTTP client: one line, not a traceback
            raise ValueError(f"{text}: no such local file or folder, and fetching it from the Hub failed "
                             f"({type(exc).__name__})") from None
    raise ValueError(f"{text}: no such file or folder")


def read_metadata(path: Path | None, overrides: dict[str, object] | None = None) -> dict[str, object]:
    """Metadata from ``submission.yaml`` / ``.json`` (checked), updated with ``overrides`` that are not None."""
    meta = read_metadata_file(path, path.parent) if path is not None else {}
    meta.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return check_metadata(meta, str(path or "metadata"), METADATA_FIELDS, MAX_RUNS)


def _probabilities(df: pd.DataFrame, labels: list[str], name: str, problems: list[Problem]) -> np.ndarray | None:
    """(n, C) probabilities from a ``probs`` list column or ``prob_<label>`` columns; None if absent."""
    prob_cols = [f"prob_{label}" for label in labels]
    if "probs" in df.columns:
        lengths = df["probs"].map(lambda v: len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1).to_numpy()
        bad = np.flatnonzero(lengths != len(labels))
        if bad.size:
            add_rows(problems, name, bad, "probs", lambda r: f"expected a list of {len(labels)} probabilities "
                     f"({', '.join(labels)})")
            return None
        try:
            probs = np.array(df["probs"].tolist(), dtype=np.float64).reshape(len(df), len(labels))
        except (TypeError, ValueError):
            problems.append(Problem(name, None, "probs", "expected lists of numbers"))
            return None
    elif any(c.startswith("prob_") for c in df.columns):
        missing = [c for c in prob_cols if c not in df.columns]
        if missing:
            problems.append(Problem(name, None, missing[0], f"missing; probability columns must be {prob_cols}"))
            return None
        probs = df[prob_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    else:
        return None
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(~np.isfinite(sums) | (np.abs(sums - 1) > PROB_TOLERANCE) | (np.nan_to_num(probs, nan=-1).min(axis=1) < 0))
    add_rows(problems, name, bad, "probs", lambda r: f"probabilities must be finite, >= 0 and sum to 1 "
             f"(+-{PROB_TOLERANCE}); found sum {sums[r]:.6g}")
    return None if bad.size else probs


def _labels_from_pred(values: pd.Series, labels: list[str], name: str, problems: list[Problem]) -> np.ndarray:
    text = values.astype(str).str.strip()
    by_name = text.map({label: k for k, label in enumerate(labels)})
    as_int = pd.to_numeric(text, errors="coerce")
    index_ok = as_int.notna() & (as_int == as_int.round()) & (as_int >= 0) & (as_int < len(labels))
    pred = by_name.where(by_name.notna(), as_int.where(index_ok))
    bad = np.flatnonzero(pred.isna().to_numpy())
    add_rows(problems, name, bad, "pred", lambda r: f"{excerpt(values.iloc[r])} is not a label name {labels} or "
             f"index 0..{len(labels) - 1}")
    return pred.fillna(-1).to_numpy(dtype=np.int64)


def load_submission(path: str | Path, reference: str | Path, *, metadata: dict[str, object] | None = None,
                    revision: str | None = None, max_bytes: int = MAX_TOTAL_BYTES) -> Submission:
    """Read and validate a submission against ``reference`` (a dataset folder or Hub id).

    Raises :class:`SubmissionError` listing the problems (file, row, field): every instance present exactly
    once per run, no unknown ids, valid label names/indices, probabilities finite and summing to ~1 and agreeing
    with ``pred``, at least one run, hashes matching the reference's, no run a copy of another or of a reference
    run. Files are read as hostile input (:mod:`instdecay.evaluate.submission_io`). Task and split come from the
    metadata (or the reference when it has a single task / split).
    """
    path = resolve_submission(path)
    files, meta_path, root = list_files(path)
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise ValueError(f"{path}: submission is {total / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
                         f"submit the last checkpoint only or split it by run")
    meta = read_metadata(meta_path, metadata)
    folder = resolve(reference, revision)
    manifest = read_manifest(folder)
    task = str(meta.get("task") or (next(iter(manifest["tasks"])) if len(manifest["tasks"]) == 1 else ""))
    if task not in manifest["tasks"]:
        raise ValueError(f"{path}: metadata 'task' must be one of {sorted(manifest['tasks'])}, found "
                         f"{excerpt(task) if task else None}")
    entry = manifest["tasks"][task]
    split = str(meta.get("split") or (next(iter(entry["eval_sets"])) if len(entry["eval_sets"]) == 1 else ""))
    if split not in entry["eval_sets"]:
        raise ValueError(f"{path}: metadata 'split' (the evaluation set) must be one of {list(entry['eval_sets'])}, "
                         f"found {excerpt(split) if split else None}")
    meta.setdefault("model", Path(path).stem if Path(path).is_file() else Path(path).name)
    meta["task"], meta["split"] = task, split
    labels = entry["label_names"]
    instances = load_instances(folder, task, split)
    ref_ids = instances["instance_id"].to_numpy()
    gold_mask = gold_class_mask(labels, entry.get("collapsed_labels", {}))[instances["label"].to_numpy()]

    problems: list[Problem] = []
    frames = []
    for f in files:
        try:
            df = read_table(f, root, max_rows=max(len(ref_ids), 1) * MAX_RUNS)
        except ValueError as exc:
            problems.append(Problem(f.name, None, "-", str(exc)))
            continue
        frames.append(_check_file(f.name, df, labels, instances, problems))
    if problems:
        raise SubmissionError(problems)
    rows = pd.concat(frames, ignore_index=True)
    if rows.empty:
        raise SubmissionError([Problem(Path(path).name, None, "-", "no prediction rows: at least one run is needed")])
    sub = _align(rows, ref_ids, gold_mask, meta, task, split, tuple(f.name for f in files))
    problems = _copied_runs(sub, _reference_fingerprints(folder, task, split, sub.prob_gold is not None))
    if problems:
        raise SubmissionError(problems)
    return sub


def _fingerprint(values: np.ndarray, probabilities: bool) -> bytes | None:
    """A run's identity at the reference's stored precision (float16 gold probabilities, or predicted labels);
    None for a constant run, which independent runs can share by chance."""
    if values.min() == values.max():
        return None
    return values.astype(np.float16 if probabilities else np.int64).tobytes()


def _reference_fingerprints(folder: Path, task: str, split: str, probabilities: bool) -> dict[bytes, str]:
    """Fingerprint -> reference run id, for every run and checkpoint of every size on this evaluation set."""
    from ..loaders.read import load_predictions

    column = "prob_gold" if probabilities else "pred"
    df = load_predictions(folder, task, split, columns=["run_id", "instance_id", column])
    order = pd.Index(load_instances(folder, task, split)["instance_id"])
    out = {}
    for run_id, group in df.groupby("run_id", sort=True):
        values = np.empty(len(order))
        values[order.get_indexer(group["instance_id"])] = group[column].to_numpy()
        key = _fingerprint(values, probabilities)
        if key is not None:
            out.setdefault(key, str(run_id))
    return out


def _copied_runs(sub: Submission, reference: dict[bytes, str]) -> list[Problem]:
    """Runs identical (at the stored precision) to another run of the submission or to a reference run: copies
    are not independent seeds, and a copy of the reference says nothing about a new model."""
    probabilities = sub.prob_gold is not None
    values = sub.prob_gold if probabilities else sub.pred
    seen: dict[bytes, str] = {}
    problems = []
    where = ",".join(sub.files)
    precision = " at float16 precision" if probabilities else ""
    for i, p in enumerate(sub.pretrain_seeds):
        for j, f in enumerate(sub.finetune_seeds):
            name = f"(pretrain_seed={p}, finetune_seed={f})"
            key = _fingerprint(values[:, i, j], probabilities)
            if key is None:
                continue
            if key in seen:
                problems.append(Problem(where, None, "finetune_seed", f"run {name} is identical{precision} to run "
                                        f"{seen[key]}: copies of a run are not independent seeds"))
            elif key in reference:
                problems.append(Problem(where, None, "finetune_seed", f"run {name} is identical{precision} to "
                                        f"reference run {reference[key]}: submit a new model's predictions"))
            seen.setdefault(key, name)
    return problems


def _check_file(name: str, df: pd.DataFrame, labels: list[str], instances: pd.DataFrame,
                problems: list[Problem]) -> pd.DataFrame:
    """Per-file checks; returns rows (file, row, seeds, checkpoint, instance index, pred, probs)."""
    before = len(problems)
    for column in ("instance_id", "finetune_seed"):
        if column not in df.columns:
            problems.append(Problem(name, None, column, f"required column missing; found {sorted(df.columns)[:12]}"))
    probs = _probabilities(df, labels, name, problems)
    if "pred" not in df.columns and probs is None and len(problems) == before:
        problems.append(Problem(name, None, "pred", f"give 'pred' (label name or index), 'probs' or prob_<label> "
                                f"columns for labels {labels}"))
    if len(problems) > before:
        return pd.DataFrame()
    out = pd.DataFrame({"file": name, "row": np.arange(1, len(df) + 1)})
    for column, default in (("pretrain_seed", 0), ("finetune_seed", None), ("checkpoint", 0)):
        raw = df[column] if column in df.columns else pd.Series(default, index=df.index)
        values = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero((values.isna() | (values != values.round()) | (values.abs() >= 2**31)).to_numpy())
        add_rows(problems, name, bad, column, lambda r: f"expected an integer, found {excerpt(raw.iloc[r])}")
        out[column] = values.where(values.abs() < 2**31).fillna(-1).astype(np.int64).to_numpy()
    ids = df["instance_id"].astype(str).to_numpy()
    position = pd.Index(instances["instance_id"]).get_indexer(ids)
    eval_set, example = instances["eval_set"].iloc[0], excerpt(instances["instance_id"].iloc[0])
    if len(ids) and (position < 0).all():  # nothing matches: most likely another evaluation set or id format
        problems.append(Problem(name, None, "instance_id", f"none of the {len(ids):,} ids is an instance of evaluation "
                                f"set {eval_set!r} (its ids look like {example}; found e.g. {excerpt(ids[0])}): set "
                                f"'split' in submission.yaml to the evaluation set the predictions are for"))
    else:
        add_rows(problems, name, np.flatnonzero(position < 0), "instance_id",
                 lambda r: f"{excerpt(ids[r])} is not an instance of the reference evaluation set {eval_set!r} (ids "
                           f"look like {example})")
    out["instance"] = position
    if "instance_hash" in df.columns:
        known = position >= 0
        mismatch = np.flatnonzero(known & (df["instance_hash"].astype(str).to_numpy()
                                           != instances["instance_hash"].to_numpy()[np.maximum(position, 0)]))
        add_rows(problems, name, mismatch, "instance_hash", lambda r: "does not match the reference's hash of this "
                 "instance (a different item or text)")
    if probs is not None:
        out["pred"] = probs.argmax(axis=1)
        out["probs"] = list(probs)
        if "pred" in df.columns:  # both given: they must agree (a tie in probs accepts any tied class)
            given = _labels_from_pred(df["pred"], labels, name, problems)
            ok = (given < 0) | (probs[np.arange(len(probs)), np.maximum(given, 0)] >= probs.max(axis=1))
            add_rows(problems, name, np.flatnonzero(~ok), "pred", lambda r: f"{excerpt(df['pred'].iloc[r])} disagrees "
                     f"with probs, whose largest is {labels[int(out['pred'].iloc[r])]!r}")
    else:
        out["pred"] = _labels_from_pred(df["pred"], labels, name, problems)
    return out


def _align(rows: pd.DataFrame, ref_ids: np.ndarray, gold_mask: np.ndarray, meta: dict, task: str, split: str,
           files: tuple[str, ...]) -> Submission:
    """Keep each run's last checkpoint; place values by (instance, seeds); every run must cover every instance once."""
    where = ",".join(files)[:200]
    runs = rows[["pretrain_seed", "finetune_seed"]].drop_duplicates()
    if len(runs) > MAX_RUNS:
        raise SubmissionError([Problem(where, None, "finetune_seed", f"{len(runs):,} (pretrain_seed, finetune_seed) "
                                       f"pairs, more than {MAX_RUNS}")])
    if rows["checkpoint"].nunique() > MAX_CHECKPOINTS:
        raise SubmissionError([Problem(where, None, "checkpoint", f"more than {MAX_CHECKPOINTS} checkpoints")])
    last = rows.groupby(["pretrain_seed", "finetune_seed"])["checkpoint"].transform("max")
    rows = rows[rows["checkpoint"] == last]
    problems: list[Problem] = []
    dup = rows.duplicated(["pretrain_seed", "finetune_seed", "checkpoint", "instance"], keep="first").to_numpy()
    dups = rows[dup]
    for file, group in dups.groupby("file"):
        add_rows(problems, file, group["row"].to_numpy() - 1, "instance_id",
                 lambda r: "this instance appears more than once in its run (same pretrain_seed, finetune_seed)")
    p_seeds = np.unique(rows["pretrain_seed"])
    f_seeds = np.unique(rows["finetune_seed"])
    n = len(ref_ids)
    counts = rows.groupby(["pretrain_seed", "finetune_seed"])["instance"].nunique()
    short = [(p, f, c) for (p, f), c in counts.items() if c != n]
    for p, f, c in short[:MAX_LISTED]:
        problems.append(Problem(where, None, "instance_id", f"run (pretrain_seed={p}, finetune_seed={f}) covers {c} of "
                                f"the {n} instances of {split}; every run needs all of them"))
    grid = {(p, f) for p, f in counts.index}
    if len(p_seeds) * len(f_seeds) > MAX_RUNS * 4:
        missing = ["many"]
    else:
        missing = [(int(p), int(f)) for p in p_seeds for f in f_seeds if (p, f) not in grid]
    if missing:
        problems.append(Problem(where, None, "finetune_seed", f"the seed grid has holes: no run for "
                                f"(pretrain_seed, finetune_seed) {missing[:5]}; every pretraining seed needs the same "
                                f"finetuning seeds"))
    if problems:
        raise SubmissionError(problems)
    i = rows["instance"].to_numpy()
    pi = np.searchsorted(p_seeds, rows["pretrain_seed"].to_numpy())
    fi = np.searchsorted(f_seeds, rows["finetune_seed"].to_numpy())
    pred = rows["pred"].to_numpy()
    correct = np.zeros((n, len(p_seeds), len(f_seeds)))
    correct[i, pi, fi] = gold_mask[i, pred]
    pred_grid = np.zeros((n, len(p_seeds), len(f_seeds)), dtype=np.int64)
    pred_grid[i, pi, fi] = pred
    prob_gold = None
    if "probs" in rows.columns and rows["probs"].notna().all():
        probs = np.stack(rows["probs"].to_numpy())
        prob_gold = np.zeros_like(correct)
        prob_gold[i, pi, fi] = (probs * gold_mask[i]).sum(axis=1)
    return Submission(meta, task, split, correct, prob_gold, pred_grid, p_seeds, f_seeds, ref_ids, files)


def content_hash(path: str | Path) -> str:
    """sha256 over the submission's files and metadata (names and bytes), for caching its evaluation."""
    import hashlib

    files, meta, root = list_files(resolve_submission(path))
    h = hashlib.sha256()
    for f in [*files, *([meta] if meta else [])]:
        h.update(f.name.encode() + b"\0")
        fd = open_regular(f, root=root, max_bytes=MAX_FILE_BYTES)
        with os.fdopen(fd, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()

