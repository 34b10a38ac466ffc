"""Paired comparisons of two models: multi-bootstrap intervals, McNemar's exact test, multiplicity corrections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from ._validate import SeedLike, Units, as_scores, as_units, check_rng, check_same_instances, last_checkpoint

Alternative = Literal["two-sided", "greater", "less"]
Interval = Literal["t", "percentile"]
Resample = Literal["seeds", "nested"]


@dataclass(frozen=True)
class PairedComparison:
    """Accuracy difference ``delta = acc(B) - acc(A)`` with a two-sided ``confidence`` interval and a p-value.

    ``ci_low, ci_high`` covers the expected difference over both models' seeds and the instance population.
    ``p_value`` tests H0: delta = 0 against ``alternative`` ("greater": B better than A). ``se`` and ``df`` are the
    standard error and Welch-Satterthwaite degrees of freedom of the t interval (``df`` is inf when seed noise
    is negligible against instance sampling); ``noise_a`` / ``noise_b`` say what each model's units are, and
    ``warning`` flags intervals that do not cover seed noise as promised.
    """

    accuracy_a: float
    accuracy_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    alternative: Alternative
    confidence: float
    interval: Interval
    resample: Resample
    paired_seeds: bool
    n_boot: int
    se: float
    df: float
    noise_a: str
    noise_b: str
    warning: str | None = None
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


def _per_unit(x: np.ndarray, name: str) -> Units:
    """Units of one model: pretraining seeds (their finetuning runs averaged), or the finetuning runs of a
    single pretrained model, or the columns of 2-D input; a single run is one unit."""
    x = last_checkpoint(x)
    if x.ndim == 3 and x.shape[1] == 1 and x.shape[2] == 1:
        return Units(x[:, 0, :, None], noise="one run: seed noise is not covered", unit_name="run")
    if x.ndim == 2 and x.shape[1] == 1:
        return Units(x[:, :, None], noise="one run: seed noise is not covered", unit_name="run")
    return as_units(x, name)


def _mean_squares(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean squares (pretraining, finetuning, residual) of a two-way layout y (..., P, F)."""
    n_p, n_f = y.shape[-2:]
    rows, cols, grand = y.mean(axis=-1), y.mean(axis=-2), y.mean(axis=(-2, -1))
    ms_p = n_f * ((rows - grand[..., None]) ** 2).sum(axis=-1) / (n_p - 1)
    ms_f = n_p * ((cols - grand[..., None]) ** 2).sum(axis=-1) / (n_f - 1)
    residual = y - rows[..., :, None] - cols[..., None, :] + grand[..., None, None]
    return ms_p, ms_f, (residual**2).sum(axis=(-2, -1)) / ((n_p - 1) * (n_f - 1))


def _crossed_seed_part(values: np.ndarray) -> tuple[tuple[float, float], float]:
    """Seed variance (with Satterthwaite df) of a model's mean accuracy, and the mean per-instance seed noise, for
    runs (N, P, F) whose finetuning seeds may be crossed with the pretraining seeds: Var(mean) = sigma2_a / P +
    sigma2_b / F + sigma2_e / (P F) = (MS_P + MS_F - MS_E) / (P F) from the run accuracies' mean squares."""
    n_p, n_f = values.shape[1:]
    ms = _mean_squares(values.mean(axis=0))
    variance = (ms[0] + ms[1] - ms[2]) / (n_p * n_f)
    dfs = (n_p - 1, n_f - 1, (n_p - 1) * (n_f - 1))
    terms = [(m / (n_p * n_f)) ** 2 / df for m, df in zip(ms, dfs)]
    if variance <= 0:  # the sampling error of a difference of mean squares: fall back to the pretraining part
        variance, df = ms[0] / (n_p * n_f), n_p - 1
    else:
        df = variance**2 / sum(terms) if sum(terms) > 0 else np.inf
    per_instance = _mean_squares(values)
    noise = ((per_instance[0] + per_instance[1] - per_instance[2]) / (n_p * n_f)).mean()
    return (float(variance), float(df)), float(noise)


def _t_interval(ua: Units, ub: Units, paired_seeds: bool, seed_design: str) -> tuple[float, float]:
    """Standard error and degrees of freedom of delta from its variance components.

    Seed part: the variance over units of each model's per-unit accuracy, over the number of units, with U - 1 df
    (Welch-Satterthwaite across the two models); for runs (N, P, F) with ``seed_design="crossed"`` the two-way
    variance of the mean accuracy (:func:`_crossed_seed_part`); with ``paired_seeds``, the variance of the per-seed
    differences over U, with U - 1 df (Welch-Satterthwaite counted the instance part's infinite df in and
    under-covered at 2-3 seeds). Instance part: the variance over instances of the per-instance difference of
    mean scores, minus its seed noise (Theorem 2's correction), over N; it carries no df (N is large)."""
    ma, mb = ua.unit_means(), ub.unit_means()  # (N, U)
    n = ma.shape[0]
    x = mb.mean(axis=1) - ma.mean(axis=1)
    if paired_seeds:
        diff = mb - ma
        seed_parts = [(diff.mean(axis=0).var(ddof=1) / diff.shape[1], diff.shape[1] - 1)]
        centred = diff - diff.mean(axis=0)
        instance_noise = centred.var(axis=1, ddof=1).mean() / diff.shape[1]
    else:
        seed_parts, instance_noise = [], 0.0
        for unit, m in ((ua, ma), (ub, mb)):
            u, runs = m.shape[1], unit.values.shape[2]
            if seed_design == "crossed" and u >= 2 and runs >= 2 and unit.unit_name == "pretraining seed":
                part, noise = _crossed_seed_part(unit.values)
                seed_parts.append(part)
                instance_noise += noise
            elif u >= 2:
                seed_parts.append((m.mean(axis=0).var(ddof=1) / u, u - 1))
                instance_noise += (m - m.mean(axis=0)).var(axis=1, ddof=1).mean() / u
    instance_part = max(0.0, (x.var(ddof=1) - instance_noise) / n) if n >= 2 else 0.0
    variance = instance_part + sum(v for v, _ in seed_parts)
    if paired_seeds:
        return float(np.sqrt(variance)), float(seed_parts[0][1]) if seed_parts[0][1] > 0 else np.inf
    denominator = sum(v**2 / df for v, df in seed_parts)
    df = variance**2 / denominator if denominator > 0 else np.inf
    return float(np.sqrt(variance)), float(df)


def _bootstrap(ua: Units, ub: Units, n_boot: int, resample: Resample, paired_seeds: bool,
               rng: np.random.Generator) -> np.ndarray:
    """Multi-bootstrap replicates of delta: instances resampled once per replicate, shared by both models;
    units (seeds) resampled per model (the same draws for both with ``paired_seeds``); with
    ``resample="nested"`` also the runs within each drawn unit."""
    n = ua.values.shape[0]
    flat = {}
    for key, u in (("a", ua), ("b", ub)):
        flat[key] = u.values.reshape(n, -1) if resample == "nested" else u.unit_means()
    boot = np.empty(n_boot)
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(m, n)) + (np.arange(m) * n)[:, None]
        inst = np.bincount(draws.ravel(), minlength=m * n).reshape(m, n) / n
        shared = rng.integers(0, ua.n_units, size=(m, ua.n_units)) if paired_seeds else None
        acc = {}
        for key, u in (("a", ua), ("b", ub)):
            units = shared if shared is not None else rng.integers(0, u.n_units, size=(m, u.n_units))
            runs = u.values.shape[2] if resample == "nested" else 1
            reps = rng.integers(0, runs, size=(m, u.n_units, runs))
            cells = units[:, :, None] * runs + reps + (np.arange(m) * u.n_units * runs)[:, None, None]
            weights = np.bincount(cells.ravel(), minlength=cells.size).reshape(m, -1) / cells[0].size
            acc[key] = ((inst @ flat[key]) * weights).sum(axis=1)
        boot[start : start + m] = acc["b"] - acc["a"]
    return boot


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
    interval: Interval = "t",
    resample: Resample = "seeds",
    paired_seeds: bool = False,
    seed_design: Literal["crossed", "nested"] = "crossed",
    seed: SeedLike = 0,
) -> PairedComparison:
    r"""Compare the mean accuracy (or mean gold probability) of model B with model A, paired over instances.

    Target: :math:`\delta = \mathbb{E}[\mathrm{acc}_B] - \mathbb{E}[\mathrm{acc}_A]`, the expected difference over
    both models' seeds and the population the instances are drawn from. A model's units are its pretraining
    seeds (each seed's finetuning runs enter through their mean), or with one pretraining seed its finetuning
    runs (then the target is about that pretrained checkpoint), or the columns of 2-D input.

    ``interval="t"`` (default): :math:`\hat\delta \pm t_{
u}\,\widehat{SE}` with
    :math:`\widehat{SE}^2 = s^2_A/U_A + s^2_B/U_B + V_{inst}` (``s^2``: variance of per-unit accuracies;
    with ``paired_seeds``, :math:`s^2_{B-A}/U` of per-seed differences) and :math:`V_{inst}` the instance
    sampling variance with the seed noise removed (Theorem 2's correction); :math:`\nu` is Welch-Satterthwaite's,
    or U - 1 with ``paired_seeds``. With ``seed_design="crossed"`` (default) a model's seed part for runs
    ``(N, P, F)`` is the two-way variance of its mean accuracy, :math:`(MS_P + MS_F - MS_E)/(PF)`, which also
    counts a finetuning seed shared by every pretrained model (crossed seeds); ``"nested"`` uses the variance of
    the per-pretraining-seed accuracies. It holds with few seeds (wide at 2 seeds).

    ``interval="percentile"``: the percentile interval of the multi-bootstrap (MultiBERTs, Sellam et al. 2022):
    each of ``n_boot`` replicates resamples the instances once, shared by both models, and each model's units
    (``paired_seeds``: the same unit indices for both, for models that share pretraining seeds); with
    ``resample="nested"`` also the finetuning runs within each drawn unit, which counts finetuning noise twice
    (it is already in the unit means). Percentile intervals under-cover with fewer than 4 units per model:
    the result's ``warning`` says so.

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
    if interval not in ("t", "percentile"):
        raise ValueError(f"interval: expected 't' or 'percentile', found {interval!r}")
    if resample not in ("seeds", "nested"):
        raise ValueError(f"resample: expected 'seeds' or 'nested', found {resample!r}")
    ua, ub = _per_unit(as_scores(a, "a"), "a"), _per_unit(as_scores(b, "b"), "b")
    check_same_instances(a=ua.values, b=ub.values)
    if paired_seeds and ua.n_units != ub.n_units:
        raise ValueError(f"paired_seeds: both models need the same seeds, found {ua.n_units} and {ub.n_units} units")
    rng = check_rng(seed)
    acc_a, acc_b = float(ua.unit_means().mean()), float(ub.unit_means().mean())
    delta = acc_b - acc_a
    if seed_design not in ("crossed", "nested"):
        raise ValueError(f"seed_design: expected 'crossed' or 'nested', found {seed_design!r}")
    se, df = _t_interval(ua, ub, paired_seeds, seed_design)
    alpha = 1 - confidence
    warning = None
    if min(ua.n_units, ub.n_units) < 2:
        warning = "a model has a single run: the interval covers instance sampling, not seed noise"
    if interval == "t":
        half = float(stats.t.ppf(1 - alpha / 2, df) * se)
        low, high = delta - half, delta + half
        if se > 0:
            tail = {"greater": stats.t.sf(delta / se, df), "less": stats.t.cdf(delta / se, df),
                    "two-sided": 2 * stats.t.sf(abs(delta) / se, df)}[alternative]
        else:
            tail = 1.0 if delta == 0 or (alternative == "greater") == (delta < 0) and alternative != "two-sided" else 0.0
        p = float(min(1.0, tail))
    else:
        boot = _bootstrap(ua, ub, n_boot, resample, paired_seeds, rng)
        low, high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
        p = _p_value(boot, alternative)
        if min(ua.n_units, ub.n_units) < 4 and warning is None:
            warning = (f"percentile bootstrap with {min(ua.n_units, ub.n_units)} units: it under-covers with fewer "
                       f"than 4 seeds per model; use interval='t'")
    return PairedComparison(
        accuracy_a=acc_a, accuracy_b=acc_b, delta=delta, ci_low=low, ci_high=high, p_value=p,
        alternative=alternative, confidence=confidence, interval=interval, resample=resample,
        paired_seeds=paired_seeds, n_boot=n_boot if interval == "percentile" else 0, se=se, df=df,
        noise_a=ua.noise, noise_b=ub.noise, warning=warning,
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
