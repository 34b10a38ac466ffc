"""The paper's analyses over a whole ladder of model sizes, collected into one report object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from ..stats._validate import SeedLike, as_scores, check_rng, check_same_instances, last_checkpoint
from ..stats.decay import DecayBounds
from ..stats.decomposition import decompose
from ..stats.disagreement import seed_disagreement
from ..stats.momentum import momentum
from .pairs import pair_bounds


@dataclass(frozen=True)
class LadderReport:
    """Tables of a ladder analysis (one row per size, pair or triple) plus the smallest-vs-largest curves."""

    sizes: tuple[str, ...]
    n_instances: int
    accuracy: pd.DataFrame
    decomposition: pd.DataFrame
    disagreement: pd.DataFrame
    bounds: pd.DataFrame
    momentum: pd.DataFrame
    extreme_pair: DecayBounds = field(repr=False)
    description: str = ""
    evaluation_set: str = ""
    n_params: list[int] | None = None
    majority: float | None = None  # accuracy of always predicting the most frequent gold label
    seed_design: str = "crossed"  # what the statistics assumed about the finetuning seeds

    def to_dict(self) -> dict[str, object]:
        def records(df: pd.DataFrame) -> list[dict[str, object]]:
            return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
                    for row in df.to_dict(orient="records")]

        return {
            "description": self.description,
            "evaluation_set": self.evaluation_set,
            "majority_class_accuracy": self.majority,
            "seed_design": self.seed_design,
            "sizes": list(self.sizes),
            "n_instances": self.n_instances,
            "accuracy": records(self.accuracy),
            "decomposition": records(self.decomposition),
            "disagreement": records(self.disagreement),
            "bounds": records(self.bounds),
            "momentum": records(self.momentum),
        }


def analyze_ladder(
    ladder: Mapping[str, object],
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: SeedLike = 0,
    description: str = "",
    evaluation_set: str = "",
    n_params: Sequence[int] | None = None,
    majority: float | None = None,
    progress: bool = True,
    seed_design: str = "crossed",
    workers: int | None = None,
) -> LadderReport:
    """Run the paper's analyses on a ladder ``{size name: scores}`` ordered from smallest to largest.

    Scores follow the input convention of :mod:`instdecay.evaluate` (``(N, P, F[, E])`` per size, same instances).
    Computes accuracy per size (mean and std over runs), the unbiased loss decomposition at the last
    checkpoint (and the plug-in one for contrast; call :func:`decompose` on 4-D scores for checkpoint
    variance), seed disagreement (0/1 input), decay and improve bounds for every ordered pair (the paper's
    all-runs estimate, a 95% LCB on that design, and a rigorous LCB on one 0/1 run per pretraining seed; sizes
    with different seed grids are compared on a matched design), and momentum (naive and noise-corrected) for
    consecutive triples and for (smallest, middle, largest). ``seed_design`` (``"crossed"``, valid either way, or
    ``"nested"`` when the data's manifest says runs share no seeds) goes to every estimator. The pairs' bootstraps
    run on ``workers`` threads (default: the available CPUs); each pair has its own random stream spawned from
    ``seed``, so the numbers do not depend on ``workers``.
    """
    if len(ladder) < 2:
        raise ValueError(f"ladder: need at least 2 sizes, found {len(ladder)}")
    sizes = tuple(ladder)
    scores = {name: as_scores(x, f"ladder[{name!r}]", ndims=(3, 4)) for name, x in ladder.items()}
    n = check_same_instances(**scores)
    rng = check_rng(seed)
    last = {name: last_checkpoint(x) for name, x in scores.items()}

    acc_rows, dec_rows, dis_rows = [], [], []
    for name in sizes:
        runs = last[name].mean(axis=0).ravel()
        acc_rows.append({"size": name, "accuracy": float(runs.mean()),
                         "run_std": float(runs.std(ddof=1)) if runs.size > 1 else np.nan,
                         "n_pretrain": last[name].shape[1], "n_finetune": last[name].shape[2],
                         "n_checkpoints": scores[name].shape[3] if scores[name].ndim == 4 else 1})
        if min(last[name].shape[1:]) >= 2:  # last checkpoint, as the paper's main analyses
            for estimator in ("unbiased", "plugin"):
                dec_rows.append({"size": name, **decompose(last[name], estimator, seed_design).to_dict()})
        if np.isin(last[name], (0.0, 1.0)).all():
            dis_rows.append({"size": name, **seed_disagreement(last[name]).__dict__})

    pairs = list(combinations(range(len(sizes)), 2))
    results = pair_bounds([(last[sizes[i]], last[sizes[j]]) for i, j in pairs], n_boot=n_boot,
                          confidence=confidence, seed_design=seed_design, seed=rng, workers=workers, progress=progress)
    bound_rows = []
    for (i, j), (r, rigorous) in zip(pairs, results):
        bound_rows.append({"smaller": sizes[i], "larger": sizes[j], **r.to_dict(),
                           "decay_lcb_rigorous": rigorous.decay_lcb if rigorous else None,
                           "improve_lcb_rigorous": rigorous.improve_lcb if rigorous else None})
    extreme = results[pairs.index((0, len(sizes) - 1))][0]

    triples = [(k, k + 1, k + 2) for k in range(len(sizes) - 2)]
    if len(sizes) > 3:
        triples.append((0, len(sizes) // 2, len(sizes) - 1))
    mom_rows = []
    for triple in triples:
        names = tuple(sizes[k] for k in triple)
        row: dict[str, object] = dict(zip(("smaller", "middle", "larger"), names))
        for corrected in (False, True):
            tag = "corrected" if corrected else "naive"
            try:
                m = momentum(*(last[k] for k in names), noise_correction=corrected, seed_design=seed_design)
            except ValueError as exc:  # too few seeds for the correction: say so in the table
                row[f"{tag}_overall"], row[f"{tag}_note"] = np.nan, str(exc)
                continue
            row[f"{tag}_overall"] = m.overall
            row[f"{tag}_by_bucket"] = [None if np.isnan(v) else round(float(v), 4) for v in m.by_bucket]
        mom_rows.append(row)

    return LadderReport(
        sizes=sizes,
        n_instances=n,
        accuracy=pd.DataFrame(acc_rows),
        decomposition=pd.DataFrame(dec_rows),
        disagreement=pd.DataFrame(dis_rows),
        bounds=pd.DataFrame(bound_rows),
        momentum=pd.DataFrame(mom_rows),
        extreme_pair=extreme,
        description=description,
        evaluation_set=evaluation_set,
        n_params=list(n_params) if n_params is not None else None,
        majority=majority,
        seed_design=seed_design,
    )
