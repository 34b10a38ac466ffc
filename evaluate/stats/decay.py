"""Random-baseline lower bounds on the fraction of instances that decay (or improve) from one size to another."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._validate import SeedLike, Units, as_scores, as_units, check_rng, check_same_instances, rounded

Match = Literal["error", "subsample"]

# Bootstrap columns are processed in chunks of about this many (instance x column) cells.
_CHUNK_CELLS = 8_000_000
# Threshold grid step for non-binary scores (gold probabilities): the paper's 0.01 grid on [-1, 1].
_GRID_STEP = 0.01


@dataclass(frozen=True)
class DecayBounds:
    """Lower bounds on the fraction of instances where the larger model is worse (``decay``) or better
    (``improve``) in expected accuracy: the paper's estimate and a one-sided lower confidence bound (LCB).

    Attributes
    ----------
    decay, improve
        The paper's estimates ``max_t [ECDF_d(t) - ECDF_b(t)]`` and ``max_t [P(d > t) - P(b > t)]`` (>= 0) on
        the first compared design (units in the given order, halves = first and second half). The max over t
        biases them upward (App. E); with no true decay they are still > 0. Not a confidence bound.
    decay_threshold, improve_threshold
        Their maximising thresholds t (``-inf`` / ``+inf`` when the maximum is the trivial 0).
    decay_lcb, improve_lcb
        One-sided ``confidence`` lower confidence bounds on the decaying / improving fraction of these
        instances, simultaneous over thresholds (see :func:`decay_bounds`); 0 when nothing is certified;
        ``None`` if ``n_boot=0``.
    design_smaller, design_larger
        Each side's design as given (units x runs per unit); ``design`` the design both sides were compared
        on, ``matched`` whether the larger of the two was subsampled to get it.
    rigorous
        Whether the compared units are 0/1 and independent (binary ensembles or single runs from distinct
        pretraining seeds, or finetuning runs of one pretrained model): then Theorem 1 holds exactly. With
        units that average several finetuning runs (the paper's 50-run estimate) it needs the runs' means to
        be stochastically ordered, which App. D.1 shows can fail.
    noise_smaller, noise_larger
        Which seed noise each side's units carry.
    shared_runs
        Runs that appear identically on both sides (0/1 runs can coincide by chance; copies are not
        independent, and a side whose every run appears on the other is refused).
    thresholds, ecdf_difference, ecdf_baseline, difference, baseline
        Exact ECDF curves and per-instance ``d_i`` and ``b_i`` of the first compared design (Figure 4).
    """

    decay: float
    improve: float
    decay_threshold: float
    improve_threshold: float
    decay_lcb: float | None
    improve_lcb: float | None
    confidence: float
    n_boot: int
    n_patterns: int
    noise_smaller: str
    noise_larger: str
    design_smaller: str
    design_larger: str
    design: str
    matched: bool
    rigorous: bool
    shared_runs: int
    n_instances: int
    thresholds: np.ndarray = field(repr=False)
    ecdf_difference: np.ndarray = field(repr=False)
    ecdf_baseline: np.ndarray = field(repr=False)
    difference: np.ndarray = field(repr=False)
    baseline: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        """Scalar fields (no curves), JSON-ready."""
        keys = (
            "decay improve decay_threshold improve_threshold decay_lcb improve_lcb confidence n_boot n_patterns "
            "noise_smaller noise_larger design_smaller design_larger design matched rigorous shared_runs n_instances"
        ).split()
        return {k: getattr(self, k) for k in keys}

    def plot(self, ax=None, labels: tuple[str, str] = ("smaller", "larger")):
        """Plot the ECDFs of the instance difference and its random baseline (as in the paper's Figure 4)."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(5, 3.5))[1]
        ax.step(self.thresholds, self.ecdf_difference, where="post", label=f"ΔAcc ({labels[1]} − {labels[0]})")
        ax.step(self.thresholds, self.ecdf_baseline, where="post", label="random baseline ΔAcc′", linestyle="--")
        if np.isfinite(self.decay_threshold):
            t = self.decay_threshold
            i = np.searchsorted(self.thresholds, t)
            label = f"largest gap {self.decay:.3f} (estimate)"
            if self.decay_lcb is not None:
                label += f"; {self.confidence:.0%} LCB {self.decay_lcb:.3f}"
            ax.vlines(t, self.ecdf_baseline[i], self.ecdf_difference[i], color="k", lw=2, label=label)
        ax.set_xlabel("instance accuracy difference t")
        ax.set_ylabel("fraction of instances ≤ t")
        ax.legend(loc="upper left", fontsize=8)
        return ax


class _Side:
    """One side's scores flattened to (N, U * R) cells (float32 for 0/1 scores: their sums sit on a lattice
    whose points stay distinguishable)."""

    def __init__(self, values: np.ndarray, binary: bool):
        n, self.n_units, self.n_runs = values.shape
        self.flat = values.reshape(n, -1).astype(np.float32 if binary else np.float64)


def _describe(units: Units) -> str:
    u, r = units.n_units, units.values.shape[2]
    return f"{u} {units.unit_name}{'s' if u != 1 else ''} x {r} run{'s' if r != 1 else ''}"


def _patterns(n_units: int, n_runs: int, use_units: int, use_runs: int, n_patterns: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which units (M, U*) and runs within each (M, U*, R*) every pattern compares. Pattern 0 takes the first
    units and runs in the given order (the paper's split into first and second half); the others are random
    subsets in random order, so the baseline's halves are averaged over many splits."""
    units = np.empty((n_patterns, use_units), dtype=np.int64)
    runs = np.empty((n_patterns, use_units, use_runs), dtype=np.int64)
    units[0], runs[0] = np.arange(use_units), np.arange(use_runs)
    for m in range(1, n_patterns):
        units[m] = rng.permutation(n_units)[:use_units]
        runs[m] = np.argsort(rng.random((use_units, n_runs)), axis=1)[:, :use_runs]
    return units, runs


def _coefficients(chosen_units: np.ndarray, runs: np.ndarray, n_runs: int, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (C, n_cells) giving, per column, a side's mean over the compared cells (for d) and its
    second-half minus first-half mean (for the baseline b). ``chosen_units`` (C, U*) are unit indices,
    ``runs`` (C, U*, R*) run indices within them."""
    n_cols, use_units = chosen_units.shape
    use_runs = runs.shape[2]
    cells = chosen_units[:, :, None] * n_runs + runs  # (C, U*, R*)
    flat = (cells + (np.arange(n_cols) * n_cells)[:, None, None]).ravel()
    half = use_units // 2
    sign = np.where(np.arange(use_units) < half, -1.0, 1.0)[None, :, None] * np.ones_like(cells, dtype=float)
    mean_w = np.bincount(flat, minlength=n_cols * n_cells).reshape(n_cols, n_cells) / (use_units * use_runs)
    half_w = np.bincount(flat, weights=sign.ravel(), minlength=n_cols * n_cells).reshape(n_cols, n_cells)
    return mean_w, half_w / (half * use_runs)


def _counts_at(x: np.ndarray, step: float) -> np.ndarray:
    """(C, T) counts of each column of ``x`` (N, C) that are <= each threshold of the grid -1, -1 + step, ..., 1."""
    width = int(round(2 / step)) + 1
    # Index of the first grid point >= x (rounding first, so lattice values land exactly on their point).
    codes = np.ceil(np.round((x + 1) / step, 3)).astype(np.int64)
    codes += np.arange(x.shape[1]) * width
    return np.cumsum(np.bincount(codes.ravel(), minlength=x.shape[1] * width).reshape(-1, width), axis=1)


def _pattern_gaps(s: _Side, l_: _Side, s_units: np.ndarray, l_units: np.ndarray, s_runs: np.ndarray,
                  l_runs: np.ndarray, n_patterns: int, step: float, d_fixed: bool) -> np.ndarray:
    """Gap curves ``ECDF_d(t) - ECDF_b(t)`` (B, T) on the threshold grid, averaged over patterns, for B sets of
    (resampled) units: ``s_units`` / ``l_units`` are (B * M, U*) unit indices, ``s_runs`` / ``l_runs``
    (B * M, U*, R*) runs. ``d_fixed``: every pattern compares all units and runs, so d is the same in all of a
    replicate's patterns and is counted once."""
    n = s.flat.shape[0]
    n_cols = s_units.shape[0]
    chunk = max(n_patterns, (_CHUNK_CELLS // max(n, 1)) // n_patterns * n_patterns)
    out = []
    for start in range(0, n_cols, chunk):
        sl = slice(start, start + chunk)
        s_mean, s_half = _coefficients(s_units[sl], s_runs[sl], s.n_runs, s.flat.shape[1])
        l_mean, l_half = _coefficients(l_units[sl], l_runs[sl], l_.n_runs, l_.flat.shape[1])
        if d_fixed:
            s_mean, l_mean = s_mean[::n_patterns], l_mean[::n_patterns]
        count_d = _counts_at(l_.flat @ l_mean.T - s.flat @ s_mean.T, step)
        count_b = _counts_at((s.flat @ s_half.T + l_.flat @ l_half.T) / 2, step)
        if not d_fixed:
            count_d = count_d.reshape(-1, n_patterns, count_d.shape[1]).mean(axis=1)
        out.append((count_d - count_b.reshape(-1, n_patterns, count_b.shape[1]).mean(axis=1)) / n)
    return np.concatenate(out)


def _best_threshold(d: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float, np.ndarray, np.ndarray, np.ndarray]:
    """Paper estimates on exact ECDFs: (decay, t_decay, improve, t_improve, thresholds, count_d, count_b)."""
    t = np.unique(np.concatenate([d, b]))
    count_d = np.searchsorted(np.sort(d), t, side="right")
    count_b = np.searchsorted(np.sort(b), t, side="right")
    gap = count_d - count_b  # integer, so ties between thresholds are exact
    i, j = int(np.argmax(gap)), int(np.argmin(gap))
    decay, t_decay = (gap[i] / d.size, float(t[i])) if gap[i] > 0 else (0.0, -np.inf)
    improve, t_improve = (-gap[j] / d.size, float(t[j])) if gap[j] < 0 else (0.0, np.inf)
    return float(decay), t_decay, float(improve), t_improve, t, count_d, count_b


def _simultaneous_lcb(observed: np.ndarray, boot: np.ndarray, inflation: float, confidence: float) -> float:
    """max_t [G(t) - c q s*(t)]: q is the ``confidence`` quantile over replicates of max_t (G* - mu*) / s*."""
    centre, spread = boot.mean(axis=0), boot.std(axis=0, ddof=1)
    live = spread > 0
    if not live.any():
        return 0.0
    z = ((boot[:, live] - centre[live]) / spread[live]).max(axis=1)
    q = float(np.quantile(z, confidence, method="higher"))
    return float(max(0.0, (observed[live] - inflation * q * spread[live]).max()))


def decay_bounds(
    smaller: object,
    larger: object,
    *,
    match: Match = "error",
    runs_per_unit: int | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    n_patterns: int = 8,
    seed: SeedLike = 0,
) -> DecayBounds:
    r"""Lower-bound the fraction of instances on which the larger model is worse (and better) than the smaller.

    Each side is a set of 2k independent units (pretraining seeds; with one pretraining seed, its finetuning
    runs; or the columns of 2-D input). With the instance difference :math:`d_i` = mean of the larger side's
    units - mean of the smaller side's, and the random baseline :math:`b_i = ((S^{2nd}_i - S^{1st}_i) +
    (L^{2nd}_i - L^{1st}_i)) / 2` from the halves of each side (true value 0, same noise as :math:`d_i`; App. D,
    eqs. 17-20), Theorem 1 gives, for 0/1 units and every threshold t,

    .. math::
        G(t) = \tfrac{1}{|T|}\textstyle\sum_i \big(1[d_i \le t] - 1[b_i \le t]\big), \qquad
        \mathbb{E}_{\text{seeds}}[G(t)] \le \mathrm{Decay} = \tfrac{1}{|T|}\textstyle\sum_i 1[\Delta\mathrm{Acc}_i < 0].

    ``decay`` is the paper's :math:`\max_t G(t)` (biased upward by the max; App. E). ``decay_lcb`` is a lower
    confidence bound on Decay of the given instances, valid for the max over t: with :math:`\bar G(t)` the
    gap averaged over ``n_patterns`` splits of the units into halves (and, for matched designs, subsamples),
    :math:`\bar G^*_b(t)` its value on replicate b of a bootstrap that resamples each side's units (whole
    pretraining seeds: noise shared by all instances stays shared), :math:`\mu^*(t)` and :math:`s^*(t)` their
    mean and SD over replicates, and :math:`q` the ``confidence`` quantile of
    :math:`\max_t (\bar G^*_b(t) - \mu^*(t)) / s^*(t)`,

    .. math::
        \mathrm{LCB} = \max\big(0, \max_t [\bar G(t) - c\, q\, s^*(t)]\big),\qquad c = \sqrt{U / (U - 1)}

    where U is the fewest units on either side (resampling U units shrinks their variance by (U-1)/U). The
    bootstrap is centred on its own mean, not on the observed :math:`\bar G`, so noise already in the observed
    :math:`d_i` is not counted as decay, and the band holds for every t at once, so choosing the best t costs
    nothing. ``improve`` and ``improve_lcb`` are the same for :math:`-G(t) = P(d > t) - P(b > t)`.

    Parameters
    ----------
    smaller, larger
        Scores for the same instances: ``(N, P, F)``, ``(N, P, F, E)`` (last checkpoint used) or ``(N, U)``
        independent units (e.g. :func:`ensemble_by_pretrain`: one 0/1 value per pretraining seed, the rigorous
        variant of App. D.1). With one pretraining seed the finetuning runs are the units and the bound is
        about that pretrained checkpoint (``noise_smaller`` / ``noise_larger`` say so).
    match
        The baseline only matches d when both sides have the same number of units and runs per unit (Lemma 1).
        ``"error"`` (default) refuses different designs; ``"subsample"`` compares both on the smaller design:
        ``min`` units (made even) x ``min`` runs per unit, drawing units and runs without replacement from the
        larger design, one subsample per pattern, averaged. A side with one pretraining seed has finetuning
        runs as units, so against it the other side contributes single runs from distinct pretraining seeds.
    runs_per_unit
        Compare units of this many runs each (drawn per pattern from each unit's runs). ``1`` turns 0/1 runs
        of ``(N, P, F)`` input into one run per pretraining seed: independent 0/1 units, so Theorem 1 holds
        exactly (``rigorous``) for the same target as the paper's all-runs estimate (run-level accuracy).
        Default: all runs (the fewer of the two sides with ``match="subsample"``).
    confidence
        Level of the one-sided lower confidence bounds.
    n_boot
        Bootstrap replicates for the LCBs (0 skips them).
    n_patterns
        Splits into halves (and subsamples) averaged for the LCB; the first is the given order.
    seed
        Seed or ``np.random.Generator`` for the patterns and the bootstrap.

    Notes
    -----
    What the LCB covers: the decaying fraction of the given instances (fixed), for independent units within
    each side, with Theorem 1's premise (0/1 units, ``rigorous``; for averaged runs an approximation). Seed
    noise shared across instances (a pretraining seed that is better everywhere) is carried by resampling
    whole units. With 2 units per side the bootstrap sees little of that noise: the bound is then
    conservative where noise is instance-level and can be too high where seeds shift all instances together.
    A side whose every run appears identically on the other is refused (a model compared with itself).

    References
    ----------
    Zhong et al. (2021), Sec. 3-4, App. D (Theorem 1, Lemma 1), App. D.1, App. E.

    Examples
    --------
    >>> import numpy as np
    >>> small = np.array([[1, 1], [1, 1], [0, 0]])    # 3 instances x 2 independent units
    >>> large = np.array([[0, 0], [1, 1], [1, 0]])
    >>> r = decay_bounds(small, large, n_boot=0)
    >>> r.decay, r.improve
    (0.3333333333333333, 0.3333333333333333)
    """
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence: expected a level in [0.5, 1), found {confidence}")
    if n_boot < 0:
        raise ValueError(f"n_boot: expected >= 0, found {n_boot}")
    if n_patterns < 1:
        raise ValueError(f"n_patterns: expected >= 1, found {n_patterns}")
    if match not in ("error", "subsample"):
        raise ValueError(f"match: expected 'error' or 'subsample', found {match!r}")
    s_units = as_units(as_scores(smaller, "smaller"), "smaller")
    l_units = as_units(as_scores(larger, "larger"), "larger")
    n = check_same_instances(smaller=s_units.values, larger=l_units.values)
    shared_runs = _shared_runs(s_units, l_units)
    rng = check_rng(seed)

    (us, rs), (ul, rl) = s_units.values.shape[1:], l_units.values.shape[1:]
    matched = (us, rs) != (ul, rl)
    if matched and match == "error":
        raise ValueError(f"smaller has {_describe(s_units)} and larger {_describe(l_units)}: the random baseline "
                         f"needs the same design on both sides (Lemma 1); pass match='subsample' to compare both "
                         f"on {2 * (min(us, ul) // 2)} units x {min(rs, rl)} run(s)")
    use_units, use_runs = 2 * (min(us, ul) // 2), min(rs, rl)
    if runs_per_unit is not None:
        if not 1 <= runs_per_unit <= use_runs:
            raise ValueError(f"runs_per_unit: expected 1..{use_runs} (runs per unit available), found {runs_per_unit}")
        use_runs = runs_per_unit
    if use_units < 2:
        raise ValueError("needs at least 2 units on each side to form the random baseline's halves")
    binary = s_units.binary and l_units.binary
    rigorous = binary and use_runs == 1
    # With all runs of each unit compared, only unit means matter: work on (N, U) instead of (N, U * R).
    sides = [_Side(u.values.mean(axis=2, keepdims=True) if use_runs == u.values.shape[2] else u.values, binary)
             for u in (s_units, l_units)]
    pats = [_patterns(sd.n_units, sd.n_runs, use_units, min(use_runs, sd.n_runs), n_patterns, rng) for sd in sides]

    # The paper's estimate and curves: pattern 0 (units and runs in the given order), exact ECDFs.
    first = [_coefficients(units[:1], runs[:1], sd.n_runs, sd.flat.shape[1]) for sd, (units, runs) in zip(sides, pats)]
    d = rounded(sides[1].flat @ first[1][0][0] - sides[0].flat @ first[0][0][0])
    b = rounded((sides[0].flat @ first[0][1][0] + sides[1].flat @ first[1][1][0]) / 2)
    decay, t_decay, improve, t_improve, thresholds, count_d, count_b = _best_threshold(d, b)

    decay_lcb = improve_lcb = None
    if n_boot:
        step = 1 / (2 * use_units * use_runs) if binary else _GRID_STEP  # the lattice of d and b, or a grid
        d_fixed = all(sd.n_units == use_units and sd.n_runs == runs.shape[2] for sd, (_, runs) in zip(sides, pats))
        observed = _pattern_gaps(*sides, pats[0][0], pats[1][0], pats[0][1], pats[1][1], n_patterns, step, d_fixed)[0]
        chosen = []
        for sd, (units, runs) in zip(sides, pats):
            draws = rng.integers(0, sd.n_units, size=(n_boot, sd.n_units))
            chosen.append((np.take_along_axis(np.repeat(draws, n_patterns, axis=0), np.tile(units, (n_boot, 1)), axis=1),
                           np.tile(runs, (n_boot, 1, 1))))
        boot = _pattern_gaps(*sides, chosen[0][0], chosen[1][0], chosen[0][1], chosen[1][1], n_patterns, step, d_fixed)
        inflation = np.sqrt(min(us, ul) / (min(us, ul) - 1))
        decay_lcb = _simultaneous_lcb(observed, boot, inflation, confidence)
        improve_lcb = _simultaneous_lcb(-observed, -boot, inflation, confidence)

    return DecayBounds(
        decay=decay, improve=improve, decay_threshold=t_decay, improve_threshold=t_improve,
        decay_lcb=decay_lcb, improve_lcb=improve_lcb, confidence=confidence, n_boot=n_boot, n_patterns=n_patterns,
        noise_smaller=s_units.noise, noise_larger=l_units.noise,
        design_smaller=_describe(s_units), design_larger=_describe(l_units),
        design=f"{use_units} units x {use_runs} run{'s' if use_runs != 1 else ''} per unit on each side",
        matched=matched, rigorous=rigorous, shared_runs=shared_runs, n_instances=n,
        thresholds=thresholds, ecdf_difference=count_d / n, ecdf_baseline=count_b / n, difference=d, baseline=b,
    )


def _shared_runs(s_units: Units, l_units: Units) -> int:
    """How many distinct runs appear identically on both sides. When all of one side's (at least 2 distinct) runs
    do, the sides are refused: a model compared with itself or with a copy. Constant runs (all right or all
    wrong) are not counted, and identical 0/1 runs can be chance (small or easy evaluation sets, models that
    always predict one class), so a few shared runs are only reported."""
    def fingerprints(units: Units) -> dict[bytes, tuple[int, int]]:
        out = {}
        for u in range(units.n_units):
            for r in range(units.values.shape[2]):
                col = units.values[:, u, r]
                if col.min() != col.max():
                    out.setdefault(np.ascontiguousarray(col).tobytes(), (u, r))
        return out

    s_prints, l_prints = fingerprints(s_units), fingerprints(l_units)
    shared = s_prints.keys() & l_prints.keys()
    if any(shared == side.keys() and len(side) >= 2 for side in (s_prints, l_prints)):
        (su, sr), (lu, lr) = s_prints[next(iter(shared))], l_prints[next(iter(shared))]
        raise ValueError(f"every run of one side appears identically on the other (e.g. smaller {s_units.unit_name} "
                         f"{su} run {sr} = larger {l_units.unit_name} {lu} run {lr}): a model compared with itself "
                         f"or a copy; the two sides must be different models")
    return len(shared)
