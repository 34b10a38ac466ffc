"""Random-baseline lower bounds on the fraction of instances that decay (or improve) from one size to another."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._validate import SeedLike, as_scores, check_rng, check_same_instances, last_checkpoint, rounded

Match = Literal["error", "subsample"]
SeedDesign = Literal["crossed", "nested"]

# Bootstrap columns are processed in chunks of about this many (instance x column) cells.
_CHUNK_CELLS = 8_000_000
# Threshold grid step for non-binary scores (gold probabilities): the paper's 0.01 grid on [-1, 1].
_GRID_STEP = 0.01
# Integers up to 2**24 are exact in float32, the dtype of the 0/1 matmuls.
_EXACT_FLOAT32 = 2**24


@dataclass(frozen=True)
class DecayBounds:
    """Lower bounds on the fraction of instances where the larger model is worse (``decay``) or better
    (``improve``) in expected accuracy: the paper's estimate and a one-sided lower confidence bound (LCB).

    Attributes
    ----------
    decay, improve
        The paper's estimates ``max_t [ECDF_d(t) - ECDF_b(t)]`` and ``max_t [P(d > t) - P(b > t)]`` (>= 0), with the
        paper's baseline (first half against second half of each side's pretraining seeds, in the given order),
        computed exactly (integer counts; 0/1 scores in integer arithmetic). The max over t biases them upward
        (App. E); with no true decay they are still > 0; with crossed finetuning seeds they are biased further
        (the baseline misses the finetuning noise d carries). Not a confidence bound.
    decay_threshold, improve_threshold
        Their maximising thresholds t (``-inf`` / ``+inf`` when the maximum is the trivial 0).
    decay_lcb, improve_lcb
        One-sided ``confidence`` lower confidence bounds on the decaying / improving fraction of these
        instances (see :func:`decay_bounds`); 0 when nothing is certified; ``None`` if ``n_boot=0``.
    seed_design
        The seed design the LCB's baseline and bootstrap assume.
    design_smaller, design_larger
        Each side's design as given; ``design`` the design both sides were compared on, ``matched`` whether
        the larger of the two was subsampled to get it.
    rigorous
        Whether the compared units are 0/1 and independent (binary ensembles, single runs from distinct
        pretraining and finetuning seeds, or finetuning runs of one pretrained model): then Theorem 1 holds
        exactly. With units that average several finetuning runs it needs their means to be stochastically
        ordered, which App. D.1 shows can fail.
    noise_smaller, noise_larger
        Which seed noise each side's units carry.
    shared_runs, warning
        Runs that appear identically on both sides (copies are not independent runs and inflate the paper's
        estimate); ``warning`` says so, or flags other caveats of this comparison.
    thresholds, ecdf_difference, ecdf_baseline, difference, baseline
        Exact ECDF curves and per-instance ``d_i`` and ``b_i`` of the paper's estimate (Figure 4).
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
    seed_design: str
    noise_smaller: str
    noise_larger: str
    design_smaller: str
    design_larger: str
    design: str
    matched: bool
    rigorous: bool
    shared_runs: int
    n_instances: int
    warning: str | None
    thresholds: np.ndarray = field(repr=False)
    ecdf_difference: np.ndarray = field(repr=False)
    ecdf_baseline: np.ndarray = field(repr=False)
    difference: np.ndarray = field(repr=False)
    baseline: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        """Scalar fields (no curves), JSON-ready."""
        keys = (
            "decay improve decay_threshold improve_threshold decay_lcb improve_lcb confidence n_boot n_patterns "
            "seed_design noise_smaller noise_larger design_smaller design_larger design matched rigorous "
            "shared_runs n_instances warning"
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


@dataclass(frozen=True)
class _Side:
    """One side's scores as (N, P, F): ``P`` pretraining seeds (or independent units) x ``F`` runs each."""

    values: np.ndarray
    unit_name: str
    noise: str
    two_way: bool  # pretraining seeds x finetuning seeds (False: independent units with one run each)

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape[1], self.values.shape[2]

    def describe(self) -> str:
        p, f = self.shape
        if not self.two_way:
            return f"{p} {self.unit_name}{'s' if p != 1 else ''} x 1 run"
        return f"{p} pretraining seed{'s' if p != 1 else ''} x {f} run{'s' if f != 1 else ''}"


def _side(x: object, name: str) -> _Side:
    x = last_checkpoint(as_scores(x, name))
    if x.ndim == 2:
        return _Side(x[:, :, None], "unit", "independent units (columns of 2-D input)", False)
    if x.shape[1] >= 2:
        return _Side(x, "pretraining seed", "pretraining and finetuning seeds", True)
    if x.shape[2] >= 2:
        return _Side(x[:, 0, :, None], "finetuning run",
                     "finetuning seeds only (one pretraining seed: the bound is about this pretrained checkpoint)",
                     False)
    raise ValueError(f"{name}: needs at least 2 runs (pretraining or finetuning seeds), found shape {x.shape}")


@dataclass(frozen=True)
class _Plan:
    """How every column combines one side's cells. A column takes ``n_units`` positions of pretraining seeds and
    ``n_runs`` positions of runs; ``mean[u, r]`` weights cell (u, r) in the side's mean (for d), ``contrast[u, r]``
    in its baseline contrast (for b = (contrast_smaller + contrast_larger) / 2). ``runs_shared``: the run positions
    are the same for every unit (finetuning seeds crossed with pretraining seeds), else drawn per unit; ``paired``:
    unit u takes run position u (one run per unit, distinct pretraining and finetuning seeds)."""

    n_units: int
    n_runs: int
    mean: np.ndarray
    contrast: np.ndarray
    runs_shared: bool
    paired: bool


def _plan(kind: str, n_units: int, n_runs: int) -> _Plan:
    """``nested``: halves of the units, every run of each (the paper's baseline); ``crossed``: two diagonal blocks,
    (first half of the units) x (first half of the runs) and (second half) x (second half), which share no seed of
    either kind; d is the blocks' mean and b their difference, so both carry a finetuning seed shared across
    pretraining seeds alike and live on one lattice; ``paired``: one run per unit, halves of the units."""
    h = n_units // 2
    half = np.where(np.arange(n_units) < h, -1.0, 1.0)
    if kind == "crossed":
        g = n_runs // 2
        first = (np.arange(n_units)[:, None] < h) & (np.arange(n_runs)[None, :] < g)
        second = (np.arange(n_units)[:, None] >= h) & (np.arange(n_runs)[None, :] >= g) & \
                 (np.arange(n_runs)[None, :] < 2 * g)
        contrast = (second.astype(float) - first) / (h * g)
        return _Plan(n_units, n_runs, (first | second) / (2 * h * g), contrast, True, False)
    if kind == "paired":
        return _Plan(n_units, 1, np.full((n_units, 1), 1 / n_units), (half / h)[:, None], True, True)
    return _Plan(n_units, n_runs, np.full((n_units, n_runs), 1 / (n_units * n_runs)),
                 np.repeat((half / (h * n_runs))[:, None], n_runs, axis=1), False, False)


def _integer_scale(plan: _Plan) -> int:
    """The smallest D that makes every weight (mean, and contrast / 2) an integer: d * D and b * D are then
    integer sums of 0/1 scores."""
    scale = 1
    for w in (plan.mean, plan.contrast / 2):
        for v in np.unique(np.abs(w[w != 0])):
            scale = math.lcm(scale, round(1 / v))
    return scale


def _selection(side: _Side, plan: _Plan, n_patterns: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unit positions (M, U) and run positions (M, U, R) of every pattern. Pattern 0 takes units and runs in the
    given order (the paper's first and second half); the others random subsets in random order."""
    n_p, n_f = side.shape
    units = np.empty((n_patterns, plan.n_units), dtype=np.int64)
    runs = np.empty((n_patterns, plan.n_units, plan.n_runs), dtype=np.int64)
    units[0] = np.arange(plan.n_units)
    runs[0] = np.arange(plan.n_units)[:, None] if plan.paired else np.arange(plan.n_runs)
    for m in range(1, n_patterns):
        units[m] = rng.permutation(n_p)[: plan.n_units]
        if plan.paired:
            runs[m] = rng.permutation(n_f)[: plan.n_units, None]
        elif plan.runs_shared:
            runs[m] = rng.permutation(n_f)[: plan.n_runs]
        else:
            runs[m] = np.argsort(rng.random((plan.n_units, n_f)), axis=1)[:, : plan.n_runs]
    return units, runs


def _weights(side: _Side, plan: _Plan, units: np.ndarray, runs: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(C, P * F) weights of each column's mean and contrast over the side's cells; ``units`` (C, U) and ``runs``
    (C, U, R) are pretraining-seed and run indices (resampled: repeats add up). Float32 for integer weights (0/1
    scores: every sum is a small integer, exact), float64 otherwise."""
    n_cols = units.shape[0]
    n_p, n_f = side.shape
    cells = (units[:, :, None] * n_f + runs) + (np.arange(n_cols) * n_p * n_f)[:, None, None]
    size = n_cols * n_p * n_f
    mean = np.bincount(cells.ravel(), np.broadcast_to(plan.mean * scale, cells.shape).ravel(), size)
    contrast = np.bincount(cells.ravel(), np.broadcast_to(plan.contrast * scale / 2, cells.shape).ravel(), size)
    dtype = np.float32 if float(scale).is_integer() and scale > 1 or side.values.dtype == np.float32 else np.float64
    return mean.reshape(n_cols, -1).astype(dtype), contrast.reshape(n_cols, -1).astype(dtype)


def _exact_ecdf(d: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (every attained value) and the counts of d and b at or below each."""
    t = np.unique(np.concatenate([d, b]))
    return t, np.searchsorted(np.sort(d), t, side="right"), np.searchsorted(np.sort(b), t, side="right")


def _best_threshold(t: np.ndarray, count_d: np.ndarray, count_b: np.ndarray, n: int) -> tuple[float, float, float, float]:
    """Paper estimates (decay, t_decay, improve, t_improve) from exact counts (integers, so ties are exact)."""
    gap = count_d - count_b
    i, j = int(np.argmax(gap)), int(np.argmin(gap))
    decay, t_decay = (gap[i] / n, float(t[i])) if gap[i] > 0 else (0.0, -np.inf)
    improve, t_improve = (-gap[j] / n, float(t[j])) if gap[j] < 0 else (0.0, np.inf)
    return float(decay), t_decay, float(improve), t_improve


def decay_bounds(
    smaller: object,
    larger: object,
    *,
    seed_design: SeedDesign = "crossed",
    match: Match = "error",
    runs_per_unit: int | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    n_patterns: int = 8,
    seed: SeedLike = 0,
) -> DecayBounds:
    r"""Lower-bound the fraction of instances on which the larger model is worse (and better) than the smaller.

    With the instance difference :math:`d_i` = mean of the larger side's runs - mean of the smaller side's, and a
    random baseline :math:`b_i` from halves of each side's seeds (true value 0, the noise of :math:`d_i`; App. D,
    eqs. 17-20), Theorem 1 gives, for independent 0/1 units and every threshold t,

    .. math::
        G(t) = \tfrac{1}{|T|}\textstyle\sum_i \big(1[d_i \le t] - 1[b_i \le t]\big), \qquad
        \mathbb{E}_{\text{seeds}}[G(t)] \le \mathrm{Decay} = \tfrac{1}{|T|}\textstyle\sum_i 1[\Delta\mathrm{Acc}_i < 0].

    ``decay`` is the paper's :math:`\max_t G(t)` with the paper's baseline (biased upward by the max; App. E).

    ``decay_lcb`` is a lower confidence bound on Decay of the given instances. Its baseline depends on
    ``seed_design``:

    - ``"crossed"`` (default; valid whether finetuning seeds are crossed with pretraining seeds or nested in them):
      :math:`b_i = (C^S_i + C^L_i)/2` with :math:`C = \bar c_{B,2} - \bar c_{A,1}`, the means of two diagonal blocks
      of (halves A, B of the pretraining seeds) x (halves 1, 2 of the finetuning seeds). A finetuning seed shared
      by every pretrained model (run f of each) then enters b as it enters d: the pretraining and finetuning
      variances of b equal those of d, the interaction variance is doubled (so b is, if anything, more dispersed,
      which keeps the bound valid for thresholds t < 0). The bootstrap resamples pretraining seeds and finetuning
      seeds (a two-way bootstrap), so the shared effects are resampled as they arise.
    - ``"nested"`` (runs of different pretrained models share nothing, e.g. the manifest's ``seed_design`` says
      so): the paper's baseline, halves of the pretraining seeds with all their runs, which matches d exactly and
      is more powerful; the bootstrap resamples whole pretraining seeds.

    The gap :math:`\bar G(t)` is averaged over ``n_patterns`` splits into halves (and
    subsamples), :math:`\bar G^*_b(t)` is its value on bootstrap replicate b with mean :math:`\mu^*(t)` and SD
    :math:`s^*(t)`, :math:`q` is the ``confidence`` quantile of :math:`\max_t (\bar G^*_b(t) - \mu^*(t)) / s^*(t)`, and

    .. math::
        \mathrm{LCB} = \max\big(0, \max_{t < 0} [\bar G(t) - c\, q\, s^*(t)]\big),\qquad c = \sqrt{U / (U - 1)}

    with U the fewest units on either side (resampling U units shrinks their variance by (U-1)/U). The band holds
    for every t at once, so choosing the best t costs nothing; the bootstrap is centred on its own mean, so noise
    already in the observed :math:`d_i` is not counted as decay. ``improve`` and ``improve_lcb`` are the same for
    :math:`-G(t) = P(d > t) - P(b > t)` over t > 0.

    Parameters
    ----------
    smaller, larger
        Scores for the same instances: ``(N, P, F)``, ``(N, P, F, E)`` (last checkpoint used) or ``(N, U)``
        independent units (e.g. :func:`ensemble_by_pretrain`; with crossed finetuning seeds the ensembles of
        different pretrained models share finetuning seeds and are not independent: pass the runs instead). With
        one pretraining seed the finetuning runs are the units and the bound is about that pretrained checkpoint.
    seed_design
        ``"crossed"`` (default) or ``"nested"``: see above. An ``(N, P, F)`` array cannot say which it is.
    match
        ``"error"`` (default) refuses different designs; ``"subsample"`` compares both on the smaller design
        (``min`` pretraining seeds, made even, x ``min`` runs), drawing seeds and runs without replacement from the
        larger design, one subsample per pattern, averaged.
    runs_per_unit
        Compare this many runs of each pretraining seed. ``1`` makes the units independent 0/1 runs (``rigorous``,
        Theorem 1 exact, the same run-level target): one run per pretraining seed, and with ``seed_design="crossed"``
        from distinct finetuning seeds too (at most min(P, F) units per side). Default: all runs.
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
    What the LCB covers: the decaying fraction of the given instances (fixed), with Theorem 1's premise (0/1
    units, ``rigorous``; for averaged runs an approximation). Seed noise shared across instances (a pretraining
    seed that is better everywhere) is carried by resampling whole seeds. With 2 units per side the bootstrap
    sees little of that noise. A side whose every run appears identically on the other is refused (a model
    compared with itself); fewer shared runs are reported with a warning. The measured coverage and power of both
    seed designs and of one run per seed are in ``benchmarks/coverage.py`` and the README. Choosing t on one half
    of the instances and bounding the gap at it on the other was measured too and is not offered: the halves
    share every seed, so the choice still follows the seed noise (null coverage 0.33-0.88).

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
    if seed_design not in ("crossed", "nested"):
        raise ValueError(f"seed_design: expected 'crossed' or 'nested', found {seed_design!r}")
    sides = [_side(smaller, "smaller"), _side(larger, "larger")]
    n = check_same_instances(smaller=sides[0].values, larger=sides[1].values)
    shared_runs = _shared_runs(*sides)
    rng = check_rng(seed)

    (ps, fs), (pl, fl) = sides[0].shape, sides[1].shape
    matched = (ps, fs) != (pl, fl)
    if matched and match == "error":
        raise ValueError(f"smaller has {sides[0].describe()} and larger {sides[1].describe()}: the random baseline "
                         f"needs the same design on both sides (Lemma 1); pass match='subsample' to compare both "
                         f"on {2 * (min(ps, pl) // 2)} units x {min(fs, fl)} run(s)")
    use_units, use_runs = 2 * (min(ps, pl) // 2), min(fs, fl)
    if runs_per_unit is not None:
        if not 1 <= runs_per_unit <= use_runs:
            raise ValueError(f"runs_per_unit: expected 1..{use_runs} (runs per unit available), found {runs_per_unit}")
        use_runs = runs_per_unit
    if use_units < 2:
        raise ValueError("needs at least 2 units on each side to form the random baseline's halves")
    binary = all(np.isin(s.values, (0.0, 1.0)).all() for s in sides)
    two_way = sides[0].two_way and sides[1].two_way
    kind = "nested"  # also for one run per pretraining seed (F = 1): nothing to split on the finetuning axis
    if two_way and seed_design == "crossed" and min(fs, fl) >= 2:
        kind = "paired" if use_runs == 1 else "crossed"
        if kind == "paired":
            use_units = 2 * (min(use_units, fs, fl) // 2)
    rigorous = binary and (use_runs == 1 or not two_way)
    lcb_plan = _plan(kind, use_units, use_runs)
    paper_plan = _plan("nested", 2 * (min(ps, pl) // 2), min(fs, fl) if runs_per_unit is None else runs_per_unit)
    scale = _integer_scale(paper_plan) if binary else 1.0
    flat = [s.values.reshape(n, -1).astype(np.float32 if binary else np.float64) for s in sides]

    # The paper's estimate and curves: its baseline, units and runs in the given order, exact ECDFs.
    first = [_weights(s, paper_plan, *_first_selection(paper_plan), scale) for s in sides]
    d = flat[1] @ first[1][0][0] - flat[0] @ first[0][0][0]
    b = flat[0] @ first[0][1][0] + flat[1] @ first[1][1][0]
    if binary:
        d, b = np.rint(d), np.rint(b)  # integer sums over the common denominator: exact
    else:
        d, b = rounded(d), rounded(b)
    thresholds, count_d, count_b = _exact_ecdf(d, b)
    decay, t_decay, improve, t_improve = _best_threshold(thresholds, count_d, count_b, n)

    decay_lcb = improve_lcb = None
    if n_boot:
        lcb_scale = _integer_scale(lcb_plan) if binary else 1.0  # its own lattice: fewer grid points, same bounds
        decay_lcb, improve_lcb = _lcbs(sides, flat, lcb_plan, kind, binary, lcb_scale, n_patterns, n_boot, confidence,
                                       rng)
    warning = None
    if shared_runs:
        warning = (f"{shared_runs} run(s) appear identically on both sides: copies are not independent runs, and they "
                   f"inflate the paper's estimate (the baseline's halves share them, d does not)")
    return DecayBounds(
        decay=decay, improve=improve, decay_threshold=t_decay / scale, improve_threshold=t_improve / scale,
        decay_lcb=decay_lcb, improve_lcb=improve_lcb, confidence=confidence, n_boot=n_boot, n_patterns=n_patterns,
        seed_design=seed_design, noise_smaller=sides[0].noise, noise_larger=sides[1].noise,
        design_smaller=sides[0].describe(), design_larger=sides[1].describe(),
        design=_describe_plan(lcb_plan, kind), matched=matched, rigorous=rigorous, shared_runs=shared_runs,
        n_instances=n, warning=warning, thresholds=thresholds / scale, ecdf_difference=count_d / n,
        ecdf_baseline=count_b / n, difference=d / scale, baseline=b / scale,
    )


def _first_selection(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    units = np.arange(plan.n_units)[None]
    runs = (np.arange(plan.n_units)[:, None] if plan.paired else np.broadcast_to(np.arange(plan.n_runs),
                                                                                (plan.n_units, plan.n_runs)))[None]
    return units, runs


def _describe_plan(plan: _Plan, kind: str) -> str:
    runs = f"{plan.n_runs} run{'s' if plan.n_runs != 1 else ''} per unit"
    extra = {"crossed": "; baseline: diagonal blocks of seed halves", "paired": "; distinct finetuning seeds",
             "nested": ""}[kind]
    return f"{plan.n_units} units x {runs} on each side{extra}"


def _lcbs(sides: list[_Side], flat: list[np.ndarray], plan: _Plan, kind: str, binary: bool, scale: float,
          n_patterns: int, n_boot: int, confidence: float, rng: np.random.Generator) -> tuple[float, float]:
    """Decay and improve LCBs: gap curves on the observed data and on ``n_boot`` bootstrap replicates, each
    averaged over ``n_patterns`` splits."""
    n = flat[0].shape[0]
    selections = [_selection(s, plan, n_patterns, rng) for s in sides]
    columns = []  # per side: (units (B*M, U), runs (B*M, U, R)) for the observed data (B=1) and the replicates
    for s, (units, runs) in zip(sides, selections):
        n_p, n_f = s.shape
        draws_p = np.vstack([np.arange(n_p)[None], rng.integers(0, n_p, size=(n_boot, n_p))])
        resample_runs = kind in ("crossed", "paired")
        draws_f = (np.vstack([np.arange(n_f)[None], rng.integers(0, n_f, size=(n_boot, n_f))]) if resample_runs
                   else np.broadcast_to(np.arange(n_f), (n_boot + 1, n_f)))
        rep_units = np.take_along_axis(np.repeat(draws_p, n_patterns, axis=0), np.tile(units, (n_boot + 1, 1)), axis=1)
        rep_runs = np.repeat(draws_f, n_patterns, axis=0)[np.arange((n_boot + 1) * n_patterns)[:, None, None],
                                                          np.tile(runs, (n_boot + 1, 1, 1))]
        columns.append((rep_units, rep_runs))
    keep = _informative(flat, binary)
    data = [f[keep] for f in flat]
    fixed = _fixed_gap(flat, keep, binary, scale, n)
    step = 1.0 if binary else _GRID_STEP
    lo, hi = (-scale, scale) if binary else (-1.0, 1.0)
    grid = np.arange(round((hi - lo) / step) + 1) * step + lo
    d_fixed = kind == "nested" and all(plan.n_units == s.shape[0] and plan.n_runs == s.shape[1] for s in sides)
    gaps = _gap_curves(sides, data, columns, plan, n_patterns, binary, scale, lo, step, grid.size, d_fixed) / n + fixed
    observed, boot = gaps[0], gaps[1:]
    inflation = np.sqrt(plan.n_units / (plan.n_units - 1)) if plan.n_units > 1 else 1.0
    # decay: t < 0; improve: t > 0, where P(d > t) on the lattice equals its value at the grid point 0 (counts are
    # taken at or below each grid point), so the improve side starts at 0
    negative, positive = grid < 0, grid >= 0
    return (_simultaneous_lcb(observed[negative], boot[:, negative], inflation, confidence),
            _simultaneous_lcb(-observed[positive], -boot[:, positive], inflation, confidence))


def _informative(flat: list[np.ndarray], binary: bool) -> np.ndarray:
    """Instances whose gap contribution can vary: 0/1 instances constant on each side give the same d and b = 0
    in every column, so their contribution is added once (:func:`_fixed_gap`)."""
    if not binary:
        return np.ones(flat[0].shape[0], dtype=bool)
    constant = [(f.min(axis=1) == f.max(axis=1)) for f in flat]
    return ~(constant[0] & constant[1])


def _fixed_gap(flat: list[np.ndarray], keep: np.ndarray, binary: bool, scale: float, n: int) -> np.ndarray | float:
    """The gap curve of the instances left out by :func:`_informative` (d = c_L - c_S, b = 0), on the integer
    grid -D..D."""
    if not binary or keep.all():
        return 0.0
    grid = np.arange(-scale, scale + 1)
    d = (flat[1][~keep, 0] - flat[0][~keep, 0]) * scale
    return ((d[:, None] <= grid).sum(axis=0) - (0 <= grid) * int((~keep).sum())) / n


def _gap_curves(sides, data, columns, plan, n_patterns, binary, scale, lo, step, width, d_fixed) -> np.ndarray:
    """Gap curves (columns // n_patterns, T) in counts, averaged over each replicate's patterns. Both sides'
    cells form one design matrix, so d and b of a chunk of columns are one matmul each; for 0/1 scores on a
    small lattice, one matmul gives both at once as a joint integer code (half the values to count)."""
    n = data[0].shape[0]
    n_cols = columns[0][0].shape[0]
    exact_columns = _EXACT_FLOAT32 // (width * width) - 2  # codes and partial sums stay below 2**24
    joint = binary and width * width <= n // 4 and n_patterns <= exact_columns
    chunk = max(n_patterns, (_CHUNK_CELLS // max(n, 1)) // n_patterns * n_patterns)
    if joint:
        chunk = min(chunk, exact_columns // n_patterns * n_patterns)
    design = np.hstack(data)
    if binary:  # integer-valued floats: the shift to non-negative codes rides along as a bias column
        design = np.hstack([design, np.ones((n, 1), design.dtype)])
    out = []
    for start in range(0, n_cols, chunk):
        sl = slice(start, start + chunk)
        (s_mean, s_contrast), (l_mean, l_contrast) = (_weights(s, plan, units[sl], runs[sl], scale)
                                                      for s, (units, runs) in zip(sides, columns))
        mean, contrast = np.hstack([-s_mean, l_mean]), np.hstack([s_contrast, l_contrast])
        if joint:
            count_d, count_b = _joint_counts(design, mean, contrast, n_patterns, lo, width)
        else:
            # with d_fixed every pattern uses every cell: d is the replicate's, the same for all its patterns
            count_d = (_counts(design, mean[::n_patterns], 1, lo, step, width, binary) if d_fixed
                       else _counts(design, mean, n_patterns, lo, step, width, binary))
            count_b = _counts(design, contrast, n_patterns, lo, step, width, binary)
        out.append(count_d - count_b)
    return np.concatenate(out)


def _joint_counts(design: np.ndarray, mean: np.ndarray, contrast: np.ndarray, group: int, lo: float,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of d and b (as :func:`_counts`) for 0/1 scores from one joint code per instance and column,
    ``(d - lo) * width + (b - lo)`` plus the column's offset, exact while every code is below 2**24."""
    n_out = mean.shape[0]
    bias = (np.arange(n_out) * width * width - lo * (width + 1))[:, None]
    codes = (design @ np.hstack([mean * width + contrast, bias.astype(mean.dtype)]).T).astype(np.intp)
    hist = np.bincount(codes.ravel(), minlength=n_out * width * width).reshape(n_out, width, width)
    count_d, count_b = np.cumsum(hist.sum(axis=2), axis=1), np.cumsum(hist.sum(axis=1), axis=1)
    return (count_d.reshape(-1, group, width).mean(axis=1), count_b.reshape(-1, group, width).mean(axis=1))


def _counts(design: np.ndarray, weights: np.ndarray, group: int, lo: float, step: float, width: int,
            binary: bool) -> np.ndarray:
    """(C / group, T) counts of ``design @ weights.T`` (N, C) at or below each grid point lo, lo + step, ...,
    each summed over ``group`` consecutive columns and divided by ``group``. Exact for integer numerators (0/1
    scores, whose design carries a last column of ones for the shift); for probabilities the first grid point
    >= x (after rounding off float noise)."""
    n_out = weights.shape[0] // group
    offsets = np.repeat(np.arange(n_out) * width, group)
    if binary:
        codes = (design @ np.hstack([weights, (offsets - lo)[:, None].astype(weights.dtype)]).T).astype(np.intp)
    else:
        codes = np.ceil(np.round((design @ weights.T - lo) / step, 3)).astype(np.intp) + offsets
    counts = np.bincount(codes.ravel(), minlength=n_out * width).reshape(n_out, width)
    return np.cumsum(counts, axis=1) / group


def _simultaneous_lcb(observed: np.ndarray, boot: np.ndarray, inflation: float, confidence: float) -> float:
    """max_t [G(t) - c q s*(t)]: q is the ``confidence`` quantile over replicates of max_t (G* - mu*) / s*."""
    centre, spread = boot.mean(axis=0), boot.std(axis=0, ddof=1)
    live = spread > 0
    if not live.any():
        return 0.0
    z = ((boot[:, live] - centre[live]) / spread[live]).max(axis=1)
    q = float(np.quantile(z, confidence, method="higher"))
    return float(max(0.0, (observed[live] - inflation * q * spread[live]).max()))


def _shared_runs(small: _Side, large: _Side) -> int:
    """How many distinct runs appear identically on both sides. When all of one side's (at least 2 distinct) runs
    do, the sides are refused: a model compared with itself or with a copy. Constant runs (all right or all
    wrong) are not counted."""
    def fingerprints(side: _Side) -> dict[bytes, tuple[int, int]]:
        out = {}
        for u in range(side.shape[0]):
            for r in range(side.shape[1]):
                col = side.values[:, u, r]
                if col.min() != col.max():
                    out.setdefault(np.ascontiguousarray(col).tobytes(), (u, r))
        return out

    s_prints, l_prints = fingerprints(small), fingerprints(large)
    shared = s_prints.keys() & l_prints.keys()
    if any(shared == side.keys() and len(side) >= 2 for side in (s_prints, l_prints)):
        (su, sr), (lu, lr) = s_prints[next(iter(shared))], l_prints[next(iter(shared))]
        raise ValueError(f"every run of one side appears identically on the other (e.g. smaller {small.unit_name} "
                         f"{su} run {sr} = larger {large.unit_name} {lu} run {lr}): a model compared with itself "
                         f"or a copy; the two sides must be different models")
    return len(shared)
