"""Paired comparisons of two models: multi-bootstrap intervals, McNemar's exact test, multiplicity corrections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from ._bootstrap import draw_weights, nested_draws
from ._validate import SeedLike, as_scores, check_rng, check_same_instances, last_checkpoint

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class PairedComparison:
    """Accuracy difference ``delta = acc(B) - acc(A)`` with a percentile bootstrap interval and p-value.

    ``ci_low, ci_high`` is a two-sided ``confidence`` interval for delta. ``p_value`` tests H0: delta = 0
    against ``alternative`` ("greater": B better than A), as the bootstrap share of replicates on the other
    side of 0 (doubled for two-sided), floored at ``1 / n_boot``.
    """

    accuracy_a: float
    accuracy_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    alternative: Alternative
    confidence: float
    n_boot: int
    direction: str = "delta = accuracy(B) - accuracy(A)"

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test for two single runs on the same instances.

    ``only_a``: instances A gets right and B wrong; ``only_b``: the reverse. Under H0 (equal accuracy) each
    discordant instance is ``only_b`` with probability 1/2; ``alternative="greater"`` means B is better.
    """

    only_a: int
    only_b: int
    p_value: float
    alternative: Alternative
    direction: str = "B vs A: 'greater' = B more accurate"


def _weights(n_units: int, n_rep: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Nested seed-bootstrap weights (n_boot, n_units * n_rep) summing to 1 per replicate."""
    return draw_weights(nested_draws(n_units, n_rep, n_boot, rng), n_boot, n_units * n_rep)


def _as_runs(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Flatten to (N, units * replicates); 2-D columns are units with one replicate."""
    x = last_checkpoint(x)
    if x.ndim == 2:
        return x, x.shape[1], 1
    return x.reshape(x.shape[0], -1), x.shape[1], x.shape[2]


def _p_value(boot: np.ndarray, alternative: Alternative) -> float:
    n = boot.size
    below, above = (boot <= 0).mean(), (boot >= 0).mean()
    p = {"greater": below, "less": above, "two-sided": min(1.0, 2 * min(below, above))}[alternative]
    return float(max(p, 1 / n))


def paired_bootstrap(
    a: object,
    b: object,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
    seed: SeedLike = 0,
) -> PairedComparison:
    """Multi-bootstrap comparison of mean accuracy (or mean gold probability) of model B against model A.

    Each replicate resamples, independently for each model, its pretraining seeds with replacement and,
    within each drawn seed, its finetuning runs (the seed hierarchy), and resamples the instances once,
    shared by both models (paired over instances), as in the MultiBERTs multi-bootstrap. The interval thus
    covers seed noise of both models and the sampling of instances.

    Parameters
    ----------
    a, b
        Scores on the same instances: ``(N, P, F)``, ``(N, P, F, E)`` (last checkpoint) or ``(N, U)`` units.
    alternative
        ``"greater"`` tests whether B is more accurate than A.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = (rng.random((500, 3, 2)) < 0.7).astype(float)
    >>> b = (rng.random((500, 3, 2)) < 0.8).astype(float)
    >>> r = paired_bootstrap(a, b, alternative="greater")
    >>> r.ci_low > 0, r.p_value < 0.01
    (True, True)
    """
    if n_boot < 1:
        raise ValueError(f"n_boot: expected >= 1, found {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a level in (0, 1), found {confidence}")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative: expected 'two-sided', 'greater' or 'less', found {alternative!r}")
    xa, ua, ra = _as_runs(as_scores(a, "a"))
    xb, ub, rb = _as_runs(as_scores(b, "b"))
    n = check_same_instances(a=xa, b=xb)
    rng = check_rng(seed)

    boot = np.empty(n_boot)
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(m, n)) + (np.arange(m) * n)[:, None]
        inst = np.bincount(draws.ravel(), minlength=m * n).reshape(m, n) / n
        run_acc_a, run_acc_b = inst @ xa, inst @ xb  # (m, runs): each run's accuracy on the resampled instances
        acc_a = (run_acc_a * _weights(ua, ra, m, rng)).sum(axis=1)
        acc_b = (run_acc_b * _weights(ub, rb, m, rng)).sum(axis=1)
        boot[start : start + m] = acc_b - acc_a

    alpha = 1 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    acc_a, acc_b = float(xa.mean()), float(xb.mean())
    return PairedComparison(
        accuracy_a=acc_a,
        accuracy_b=acc_b,
        delta=acc_b - acc_a,
        ci_low=float(low),
        ci_high=float(high),
        p_value=_p_value(boot, alternative),
        alternative=alternative,
        confidence=confidence,
        n_boot=n_boot,
    )


def mcnemar_test(a: object, b: object, alternative: Alternative = "two-sided") -> McNemarResult:
    """McNemar's exact (binomial) test comparing two single runs' 0/1 correctness on the same instances.

    Examples
    --------
    >>> r = mcnemar_test([1, 1, 1, 0, 0], [0, 0, 0, 0, 1])
    >>> r.only_a, r.only_b, round(r.p_value, 3)
    (3, 1, 0.625)
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative: expected 'two-sided', 'greater' or 'less', found {alternative!r}")
    xa = as_scores(np.asarray(a, dtype=float)[:, None], "a", ndims=(2,), binary=True)[:, 0]
    xb = as_scores(np.asarray(b, dtype=float)[:, None], "b", ndims=(2,), binary=True)[:, 0]
    check_same_instances(a=xa, b=xb)
    only_a = int(((xa == 1) & (xb == 0)).sum())
    only_b = int(((xa == 0) & (xb == 1)).sum())
    if only_a + only_b == 0:
        p = 1.0
    else:
        p = float(stats.binomtest(only_b, only_a + only_b, 0.5, alternative=alternative).pvalue)
    return McNemarResult(only_a, only_b, p, alternative)


def adjust_pvalues(p_values: object, method: Literal["holm", "bh"] = "holm") -> np.ndarray:
    """Adjust p-values for many comparisons: Holm (family-wise error) or Benjamini-Hochberg (FDR).

    Holm: sort ascending, multiply the k-th smallest (k = 0..m-1) by ``m - k``, take the running maximum, clip
    at 1. BH: ``scipy.stats.false_discovery_control``. Reject where the adjusted value is <= the level.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, 0.03], "holm")
    array([0.03, 0.06, 0.06])
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_values: expected a non-empty 1-D array of probabilities in [0, 1]")
    if method == "bh":
        return stats.false_discovery_control(p, method="bh")
    if method != "holm":
        raise ValueError(f"method: expected 'holm' or 'bh', found {method!r}")
    order = np.argsort(p)
    scaled = np.maximum.accumulate(p[order] * (p.size - np.arange(p.size)))
    out = np.empty_like(p)
    out[order] = np.minimum(scaled, 1.0)
    return out
