"""Assembling checked rows into runs (the last step of reading a submission): each run's last checkpoint placed by
(instance, seeds) into ``(n_instances, n_pretrain, n_finetune)`` arrays, a complete seed grid, and no run that
copies another or a reference run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...loaders.read import load_instances, load_predictions
from .checks import MAX_RUNS, Target
from .problems import MAX_LISTED, Problem, SubmissionError, add_rows

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


def assemble_runs(rows: pd.DataFrame, target: Target, meta: dict, files: tuple[str, ...]) -> Submission:
    """Keep each run's last checkpoint; place values by (instance, seeds); every run must cover every instance once."""
    ref_ids, gold_mask, split = target.instance_ids, target.gold_mask, target.split
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
    return Submission(meta, target.task, split, correct, prob_gold, pred_grid, p_seeds, f_seeds, ref_ids, files)


def _fingerprint(values: np.ndarray, probabilities: bool) -> bytes | None:
    """A run's identity at the reference's stored precision (float16 gold probabilities, or predicted labels);
    None for a constant run, which independent runs can share by chance."""
    if values.min() == values.max():
        return None
    return values.astype(np.float16 if probabilities else np.int64).tobytes()


def reference_fingerprints(folder: Path, task: str, split: str, probabilities: bool) -> dict[bytes, str]:
    """Fingerprint -> reference run id, for every run and checkpoint of every size on this evaluation set."""
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


def copied_runs(sub: Submission, reference: dict[bytes, str]) -> list[Problem]:
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
