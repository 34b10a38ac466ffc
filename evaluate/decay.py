"""Random-baseline lower bounds on the fraction of instances that decay (or improve) from one size to another."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._bootstrap import draw_weights, nested_draws
from ._validate import SeedLike, Units, as_scores, as_units, check_rng, check_same_instances, rounded

# Bootstrap replicates are processed in chunks of about this many (instance x replicate) cells.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class DecayBounds:
    """Lower bounds on the fraction of instances where the larger model is worse (``decay``) or better
    (``improve``) in expected accuracy, each as the paper's estimate, a cross-fitted estimate and a one-sided
    bootstrap lower confidence bound (LCB).

    Attributes
    ----------
    decay, improve
        Paper estimates ``max_t [ECDF_d(t) - ECDF_d'(t)]`` and ``max_t [P(d > t) - P(d' > t)]`` (>= 0). The
        max over t makes them biased upward (App. E: up to ~15%); with no true decay they are still > 0.
    decay_threshold, improve_threshold
        The maximising thresholds t (``-inf`` / ``+inf`` when the maximum is the trivial 0).
    decay_crossfit, improve_crossfit
        Threshold chosen on one random half of the instances, gap evaluated on the other, both ways, weighted by
        half size. Removes the selection bias of the max; can be slightly negative.
    decay_lcb, improve_lcb
        ``confidence`` one-sided lower confidence bounds on the cross-fitted quantity (percentile bootstrap
        over units, nested over finetuning runs, and over instances within each half); ``None`` if ``n_boot=0``.
    noise_smaller, noise_larger
        Which seed noise the random baseline accounts for on each side.
    units_used
        Units (pretraining seeds, or finetuning runs when there is one pretraining seed, or 2-D columns) used
        per side: the largest even number available.
    thresholds, ecdf_difference, ecdf_baseline
        The exact ECDF curves of ``d`` and ``d'`` at every attained value (for the paper's Figure 4).
    difference, baseline
        Per-instance ``d_i`` and ``d'_i``.
    """

    decay: float
    improve: float
    decay_threshold: float
    improve_threshold: float
    decay_crossfit: float
    improve_crossfit: float
    decay_lcb: float | None
    improve_lcb: float | None
    confidence: float
    n_boot: int
    noise_smaller: str
    noise_larger: str
    units_used: tuple[int, int]
    n_instances: int
    thresholds: np.ndarray = field(repr=False)
    ecdf_difference: np.ndarray = field(repr=False)
    ecdf_baseline: np.ndarray = field(repr=False)
    difference: np.ndarray = field(repr=False)
    baseline: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        """Scalar fields (no curves), JSON-ready."""
        keys = (
            "decay improve decay_threshold improve_threshold decay_crossfit improve_crossfit decay_lcb "
            "improve_lcb confidence n_boot noise_smaller noise_larger n_instances"
        ).split()
        out: dict[str, object] = {k: getattr(self, k) for k in keys}
        out["units_used"] = list(self.units_used)
        return out

    def plot(self, ax=None, labels: tuple[str, str] = ("smaller", "larger")):
        """Plot the ECDFs of the instance difference and its random baseline (as in the paper's Figure 4)."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(5, 3.5))[1]
        ax.step(self.thresholds, self.ecdf_difference, where="post", label=f"ΔAcc ({labels[1]} − {labels[0]})")
        ax.step(self.thresholds, self.ecdf_baseline, where="post", label="random baseline ΔAcc′", linestyle="--")
        if np.isfinite(self.decay_threshold):
            t = self.decay_threshold
            i = np.searchsorted(self.thresholds, t)
            ax.vlines(t, self.ecdf_baseline[i], self.ecdf_difference[i], color="k", lw=2,
                      label=f"decay ≥ {self.decay:.3f}")
        ax.set_xlabel("instance accuracy difference t")
        ax.set_ylabel("fraction of instances ≤ t")
        ax.legend(loc="upper left", fontsize=8)
        return ax


def _halves(units: Units) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance mean of the first and second half of the (even number of) units."""
    h = units.n_units // 2
    means = units.unit_means()
    return means[:, :h].mean(axis=1), means[:, h : 2 * h].mean(axis=1)


def _ecdf_counts(d: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (every attained value) and the counts of ``d`` and ``b`` that are <= each threshold."""
    t = np.unique(np.concatenate([d, b]))
    return t, np.searchsorted(np.sort(d), t, side="right"), np.searchsorted(np.sort(b), t, side="right")


def _best_threshold(d: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """Paper estimates and thresholds: (decay, t_decay, improve, t_improve); trivial maxima give +-inf."""
    t, count_d, count_b = _ecdf_counts(d, b)
    gap = count_d - count_b  # integer, so ties between thresholds are exact
    i, j = int(np.argmax(gap)), int(np.argmin(gap))
    decay, t_decay = (gap[i] / d.size, float(t[i])) if gap[i] > 0 else (0.0, -np.inf)
    improve, t_improve = (-gap[j] / d.size, float(t[j])) if gap[j] < 0 else (0.0, np.inf)
    return float(decay), t_decay, float(improve), t_improve


def _gap_at(d: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Per-instance contribution ``1[d <= t] - 1[b <= t]`` (its mean is ECDF_d(t) - ECDF_b(t))."""
    return (d <= t).astype(np.float64) - (b <= t)


def _bootstrap_weights(units: Units, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Weights (n_boot, 2h*R) that turn flattened scores into the resampled first- and second-half means.

    Units are resampled with replacement and, within each drawn unit, its replicates (finetuning runs) are
    resampled with replacement: the nested bootstrap of the seed hierarchy. Draws 0..h-1 form the first half.
    """
    h = units.n_units // 2
    n_rep = units.values.shape[2]
    draws = nested_draws(2 * h, n_rep, n_boot, rng)
    return draw_weights(draws[:, :h], n_boot, 2 * h * n_rep), draw_weights(draws[:, h:], n_boot, 2 * h * n_rep)


def _instance_weights(halves: list[np.ndarray], n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Instance resampling counts (n, n_boot): each cross-fitting half is resampled within itself."""
    w = np.zeros((n, n_boot))
    for idx in halves:
        m = idx.size
        draws = rng.integers(0, m, size=(n_boot, m)) + (np.arange(n_boot) * m)[:, None]
        w[idx] = np.bincount(draws.ravel(), minlength=n_boot * m).reshape(n_boot, m).T
    return w


def decay_bounds(
    smaller: object,
    larger: object,
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: SeedLike = 0,
) -> DecayBounds:
    r"""Lower-bound the fraction of instances on which the larger model is worse (and better) than the smaller.

    With instance difference :math:`d_i = \widehat{\mathrm{Acc}}^{L}_i - \widehat{\mathrm{Acc}}^{S}_i` (mean over
    all runs of each size) and the random baseline built from the first and second halves of each size's
    pretraining seeds, :math:`d'_i = ((S^{2nd}_i - S^{1st}_i) + (L^{2nd}_i - L^{1st}_i)) / 2`, whose true value is
    0 and whose noise matches :math:`d_i` (App. D, eqs. 17-20), Theorem 1 gives for every t

    .. math::
        \mathrm{Decay} \ge \mathbb{E}[\widehat{\mathrm{Decay}}(t) - \mathrm{Decay}'(t)],\quad
        \widehat{\mathrm{Decay}}(t) = \tfrac{1}{|T|}\textstyle\sum_i 1[d_i \le t],\
        \mathrm{Decay}'(t) = \tfrac{1}{|T|}\textstyle\sum_i 1[d'_i \le t].

    The paper reports :math:`\max_t`; ``improve`` is :math:`\max_t [P(d > t) - P(d' > t)]`. ECDFs are exact
    (evaluated at every attained value, no 0.01 grid).

    Parameters
    ----------
    smaller, larger
        Scores for the same instances: ``(N, P, F)``, ``(N, P, F, E)`` (last checkpoint used) or ``(N, U)``
        independent units (e.g. :func:`ensemble_by_pretrain`, the rigorous variant of App. D.1: runs sharing a
        pretraining seed are dependent, so Theorem 1 strictly needs one unit per pretraining seed).
        With one pretraining seed the finetuning runs are split instead and the bound only accounts for
        finetuning noise of that side (``noise_smaller`` / ``noise_larger`` say so).
        Odd counts: a side with an odd number of units uses its first ``2 * (U // 2)`` units for both ``d`` and
        ``d'``, since the theorem needs two halves of equal size.
    confidence
        Level of the one-sided bootstrap lower confidence bounds.
    n_boot
        Bootstrap replicates for the LCB (0 skips it).
    seed
        Seed or ``np.random.Generator`` for the cross-fitting split and the bootstrap.

    Returns
    -------
    DecayBounds

    Notes
    -----
    Cross-fitted estimate: the instances are split at random into halves A and B; ``t_A`` maximises the gap on
    A and the gap is evaluated at ``t_A`` on B (and vice versa), so the threshold is not chosen on the data that
    scores it. The LCB is the ``1 - confidence`` percentile of that cross-fitted gap (thresholds held fixed)
    over bootstrap replicates that resample units (nested over their finetuning runs) of each size and
    instances within each half. Both halves share the same seeds, so the split removes the instance-level
    selection bias, not the (second-order) seed-level one.

    References
    ----------
    Zhong et al. (2021), Sec. 3-4, App. D (Theorem 1, Lemma 1), App. D.1, App. E.

    Examples
    --------
    >>> import numpy as np
    >>> small = np.array([[1, 1], [1, 1], [0, 0]])    # 3 instances x 2 independent units
    >>> large = np.array([[0, 0], [1, 1], [1, 1]])
    >>> r = decay_bounds(small, large, n_boot=0)
    >>> r.decay, r.improve
    (0.3333333333333333, 0.3333333333333333)
    """
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence: expected a level in [0.5, 1), found {confidence}")
    if n_boot < 0:
        raise ValueError(f"n_boot: expected >= 0, found {n_boot}")
    s_units = as_units(as_scores(smaller, "smaller"), "smaller")
    l_units = as_units(as_scores(larger, "larger"), "larger")
    n = check_same_instances(smaller=s_units.values, larger=l_units.values)
    rng = check_rng(seed)

    s1, s2 = _halves(s_units)
    l1, l2 = _halves(l_units)
    d = rounded((l1 + l2) / 2 - (s1 + s2) / 2)
    b = rounded(((s2 - s1) + (l2 - l1)) / 2)
    decay, t_decay, improve, t_improve = _best_threshold(d, b)
    thresholds, count_d, count_b = _ecdf_counts(d, b)

    # Cross-fitting: choose the threshold on one half of the instances, evaluate it on the other.
    order = rng.permutation(n)
    half_a, half_b = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
    t_dec = np.empty(n)
    t_imp = np.empty(n)
    for chosen_on, applied_to in ((half_a, half_b), (half_b, half_a)):
        if chosen_on.size == 0:  # a single instance: no honest split, use the trivial threshold
            t_dec[applied_to], t_imp[applied_to] = -np.inf, np.inf
            continue
        _, td, _, ti = _best_threshold(d[chosen_on], b[chosen_on])
        t_dec[applied_to], t_imp[applied_to] = td, ti
    decay_crossfit = float(_gap_at(d, b, t_dec).mean())
    improve_crossfit = float(-_gap_at(d, b, t_imp).mean())

    decay_lcb = improve_lcb = None
    if n_boot:
        dec_boot, imp_boot = _bootstrap_crossfit(s_units, l_units, t_dec, t_imp, [half_a, half_b], n_boot, rng)
        alpha = 1 - confidence
        decay_lcb = float(np.quantile(dec_boot, alpha))
        improve_lcb = float(np.quantile(imp_boot, alpha))

    return DecayBounds(
        decay=decay,
        improve=improve,
        decay_threshold=t_decay,
        improve_threshold=t_improve,
        decay_crossfit=decay_crossfit,
        improve_crossfit=improve_crossfit,
        decay_lcb=decay_lcb,
        improve_lcb=improve_lcb,
        confidence=confidence,
        n_boot=n_boot,
        noise_smaller=s_units.noise,
        noise_larger=l_units.noise,
        units_used=(2 * (s_units.n_units // 2), 2 * (l_units.n_units // 2)),
        n_instances=n,
        thresholds=thresholds,
        ecdf_difference=count_d / n,
        ecdf_baseline=count_b / n,
        difference=d,
        baseline=b,
    )


def _bootstrap_crossfit(
    s_units: Units,
    l_units: Units,
    t_dec: np.ndarray,
    t_imp: np.ndarray,
    halves: list[np.ndarray],
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap distribution of the cross-fitted decay and improve gaps at fixed per-instance thresholds."""
    n = t_dec.size
    flat = {}
    for key, units in (("s", s_units), ("l", l_units)):
        h = units.n_units // 2
        flat[key] = units.values[:, : 2 * h].reshape(n, -1)
    chunk = max(1, _CHUNK_CELLS // n)
    dec, imp = [], []
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        s_w1, s_w2 = _bootstrap_weights(s_units, m, rng)
        l_w1, l_w2 = _bootstrap_weights(l_units, m, rng)
        s1, s2 = flat["s"] @ s_w1.T, flat["s"] @ s_w2.T
        l1, l2 = flat["l"] @ l_w1.T, flat["l"] @ l_w2.T
        d = rounded((l1 + l2) / 2 - (s1 + s2) / 2)
        b = rounded(((s2 - s1) + (l2 - l1)) / 2)
        w = _instance_weights(halves, n, m, rng)
        dec.append((w * _gap_at(d, b, t_dec[:, None])).sum(axis=0) / n)
        imp.append(-(w * _gap_at(d, b, t_imp[:, None])).sum(axis=0) / n)
    return np.concatenate(dec), np.concatenate(imp)
