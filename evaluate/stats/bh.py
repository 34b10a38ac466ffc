"""The classical alternative to the random baseline: per-instance Fisher exact tests with Benjamini-Hochberg."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ._validate import as_scores, check_same_instances


@dataclass(frozen=True)
class BHDecayBound:
    """``bound = max_q R(q)(1 - q) / N``: at FDR q, at most a fraction q of the R(q) discoveries are false."""

    bound: float
    q: float
    n_discoveries: int
    n_instances: int
    p_values: np.ndarray = field(repr=False)


def bh_decay_bound(smaller: object, larger: object, qs: object | None = None) -> BHDecayBound:
    r"""Decaying-fraction lower bound from one-sided Fisher exact tests and Benjamini-Hochberg (Sec. 4.1, App. F).

    For each instance the 2x2 table is (smaller: a correct of n1 units; larger: b correct of n2 units). The
    one-sided p-value tests the null "the larger model is at least as good" against "the smaller model has
    higher odds of being correct": conditional on K = a + b correct, ``a ~ Hypergeom(n1 + n2, K, n1)`` and
    :math:`\alpha_i = P(A \ge a)`. BH at level q certifies R(q) discoveries of which at most a fraction q are
    false in expectation, so the bound is :math:`\max_q R(q)(1-q)/N` over ``qs`` (default 0.01..0.99; the
    paper tunes q the same way). Textbook step-up BH (``scipy.stats.false_discovery_control``).

    The columns must be independent units: one 0/1 value per pretraining seed (:func:`ensemble_by_pretrain`, or one
    run of each pretrained model from distinct finetuning seeds). Runs of one pretrained model are dependent, and
    flattening them into columns certifies decay on a null in most replicates, so seed-indexed input
    ``(N, P, F)`` is refused. The bound describes BH's expected false-discovery share; it is not a confidence bound
    (with seed-level shifts shared by all instances it exceeds the truth on a null in about 10% of replicates;
    ``benchmarks/coverage.py``); :func:`decay_bounds` gives one.

    Parameters
    ----------
    smaller, larger
        0/1 correctness of independent units, ``(n_instances, n_units)``, e.g. from :func:`ensemble_by_pretrain`.
    qs
        FDR levels to scan.

    Examples
    --------
    >>> import numpy as np
    >>> small = np.ones((4, 10)); large = np.zeros((4, 10)); large[2:] = 1
    >>> round(bh_decay_bound(small, large).bound, 3)     # 2 of 4 instances decay with p ~ 5e-6
    0.495
    """
    for name, x in (("smaller", smaller), ("larger", larger)):
        if np.ndim(x) in (3, 4):
            raise ValueError(f"{name}: bh_decay_bound needs one independent 0/1 value per pretraining seed, shape "
                             f"(n_instances, n_units), found {np.ndim(x)}-D runs; runs of one pretrained model are not "
                             f"independent: pass ensemble_by_pretrain(probs, labels) or one run per pretraining seed "
                             f"from distinct finetuning seeds, never the runs flattened")
    s = as_scores(smaller, "smaller", ndims=(2,), binary=True)
    l_ = as_scores(larger, "larger", ndims=(2,), binary=True)
    n = check_same_instances(smaller=s, larger=l_)
    q = np.arange(1, 100) / 100 if qs is None else np.asarray(qs, dtype=np.float64).ravel()
    if q.size == 0 or (q <= 0).any() or (q >= 1).any():
        raise ValueError("qs: expected FDR levels strictly between 0 and 1")
    n1, n2 = s.shape[1], l_.shape[1]
    a = s.sum(axis=1)
    k = a + l_.sum(axis=1)
    p = stats.hypergeom.sf(a - 1, n1 + n2, k, n1)
    adjusted = np.sort(stats.false_discovery_control(p, method="bh"))
    discoveries = np.searchsorted(adjusted, q, side="right")
    bounds = discoveries * (1 - q) / n
    best = int(np.argmax(bounds))
    return BHDecayBound(float(bounds[best]), float(q[best]), int(discoveries[best]), n, p)
