"""Momentum: do instances that improve from a smaller to a middle size keep improving to a larger one?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats

from ._validate import as_scores, as_units, check_same_instances, last_checkpoint
from .decomposition import two_way_components

Correlation = Literal["pearson", "spearman"]
SeedDesign = Literal["crossed", "nested"]
_MIN_BUCKET = 3


@dataclass(frozen=True)
class Momentum:
    """Correlation of ``d1 = acc_mid - acc_small`` and ``d2 = acc_large - acc_mid``.

    ``by_bucket[k]`` is the correlation among instances whose middle-size accuracy falls in bucket k
    (``[k/B, (k+1)/B)``, the last bucket closed at 1.0); NaN for buckets with < 3 instances or no spread.
    """

    overall: float
    by_bucket: np.ndarray
    bucket_counts: np.ndarray
    correlation: Correlation
    noise_correction: bool
    bucket_edges: np.ndarray = field(repr=False)
    seed_design: str = "nested"

    def to_dict(self) -> dict[str, object]:
        return {
            "overall": self.overall,
            "by_bucket": [None if np.isnan(v) else float(v) for v in self.by_bucket],
            "bucket_counts": self.bucket_counts.tolist(),
            "bucket_edges": self.bucket_edges.tolist(),
            "correlation": self.correlation,
            "noise_correction": self.noise_correction,
            "seed_design": self.seed_design,
        }


def _bucket_index(acc: np.ndarray, buckets: int) -> np.ndarray:
    """``min(floor(B * acc + 1e-9), B - 1)``: integer-safe edges, 1.0 in the last bucket."""
    return np.minimum(np.floor(buckets * acc + 1e-9).astype(int), buckets - 1)


def _mean_and_noise(units_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over units and the Theorem 2 unbiased estimate of that mean's noise variance, per instance."""
    unit_means = units_values.mean(axis=2)
    n_units = unit_means.shape[1]
    noise = unit_means.var(axis=1, ddof=1) / n_units if n_units >= 2 else np.full(unit_means.shape[0], np.nan)
    return unit_means.mean(axis=1), noise


def _block_mean_and_noise(x: np.ndarray, components: tuple, seeds: slice, runs: slice) -> tuple[np.ndarray, np.ndarray]:
    """Mean of one block (pretraining seeds x finetuning seeds) of a two-way layout (N, P, F) and the variance of
    that mean, from the size's unbiased two-way components: sigma2_a / a + sigma2_b / f + sigma2_e / (a f)."""
    block = x[:, seeds, runs]
    a, f = block.shape[1], block.shape[2]
    pretrain, shared, residual = components
    return block.mean(axis=(1, 2)), pretrain / a + shared / f + residual / (a * f)


def _corr(d1: np.ndarray, d2: np.ndarray, kind: Correlation, noise1: np.ndarray | None, noise2: np.ndarray | None) -> float:
    """Correlation of d1 and d2; disattenuated by the mean noise variances when they are given."""
    if d1.size < _MIN_BUCKET:
        return float("nan")
    if kind == "spearman":
        d1, d2 = stats.rankdata(d1), stats.rankdata(d2)
    if noise1 is None:
        if d1.std() == 0 or d2.std() == 0:
            return float("nan")
        return float(np.corrcoef(d1, d2)[0, 1])
    return _ratio(_moments(d1, d2, noise1, noise2))


def _moments(d1: np.ndarray, d2: np.ndarray, noise1: np.ndarray, noise2: np.ndarray) -> np.ndarray:
    """(Cov(d1, d2), Var(d1) - mean noise1, Var(d2) - mean noise2): unbiased for the true differences' moments."""
    cov = np.cov(d1, d2, ddof=1)
    return np.array([cov[0, 1], cov[0, 0] - noise1.mean(), cov[1, 1] - noise2.mean()])


def _ratio(moments: np.ndarray) -> float:
    cov, var1, var2 = moments
    if not (var1 > 0 and var2 > 0):
        return float("nan")
    return float(cov / np.sqrt(var1 * var2))


def _by_bucket(
    d1: np.ndarray,
    d2: np.ndarray,
    bucket: np.ndarray,
    buckets: int,
    kind: Correlation,
    noise1: np.ndarray | None,
    noise2: np.ndarray | None,
) -> np.ndarray:
    out = np.full(buckets, np.nan)
    for k in range(buckets):  # a loop over buckets, not instances
        sel = bucket == k
        out[k] = _corr(d1[sel], d2[sel], kind, None if noise1 is None else noise1[sel],
                       None if noise2 is None else noise2[sel])
    return out


def momentum(
    smaller: object,
    middle: object,
    larger: object,
    correlation: Correlation = "pearson",
    noise_correction: bool = False,
    buckets: int = 10,
    seed_design: SeedDesign = "crossed",
) -> Momentum:
    r"""Correlation between successive instance-level gains (Zhong et al. 2021, Sec. 5, App. G).

    :math:`d_1 = \widehat{\mathrm{Acc}}^{mid}_i - \widehat{\mathrm{Acc}}^{small}_i`,
    :math:`d_2 = \widehat{\mathrm{Acc}}^{large}_i - \widehat{\mathrm{Acc}}^{mid}_i`, correlated over all instances
    (``overall``) and within buckets of :math:`\widehat{\mathrm{Acc}}^{mid}_i`: bucket k holds instances with
    ``min(floor(B * acc + 1e-9), B - 1) == k``, so exact values such as 0.3 land in their own bucket and 1.0 is
    in the last (the notebook's float edges misplace both).

    ``noise_correction=False`` is the paper's estimate. It is biased negative: the middle size's seed noise
    enters d1 with + and d2 with -. ``noise_correction=True`` computes d1 from the first half of the middle
    size's units and d2 from the second half, so the noise of d1 and d2 is independent and their covariance is
    unbiased for that of the true (expected-accuracy) differences; the correlation is then disattenuated,

    .. math::
        r = \frac{\widehat{\mathrm{Cov}}(d_1, d_2)}{\sqrt{(\widehat{\mathrm{Var}}(d_1) - \overline{\hat\sigma^2_1})
        (\widehat{\mathrm{Var}}(d_2) - \overline{\hat\sigma^2_2})}},

    where :math:`\hat\sigma^2` is the Theorem 2 estimate of the noise variance of a mean over units (sample
    variance of the unit means / number of units), summed over the two sizes in each difference. It targets
    the correlation of the true differences (NaN where a corrected variance is not positive). Bucketing on the
    same units that enter d1 and d2 would couple their noise within a bucket (their sum is held fixed), so
    with correction the middle units are split in thirds: d1 and d2 from the first two, the bucket from the
    third. ``by_bucket`` therefore needs >= 6 middle units (all NaN otherwise); ``bucket_counts`` then count
    instances by that third's accuracy. Within narrow buckets the true spread is small next to the noise, so
    corrected per-bucket values are noisy and can fall outside [-1, 1]. Spearman with correction ranks the noisy values and then applies the same disattenuation; it is only
    approximate.

    With ``seed_design="crossed"`` (default, for ``(N, P, F)`` input with F >= 2 on every size) the halves split
    the finetuning seeds as well: d1 from the block (first half of the pretraining seeds) x (first half of the
    finetuning seeds) of the smaller and middle sizes, d2 from the block (second half) x (second half) of the middle
    and larger sizes, so that a finetuning seed shared by every pretrained model (run f of each, crossed seeds), or
    by the same seed index of different sizes, never enters both; each block mean's noise variance comes from the
    size's two-way variance components (:func:`instdecay.evaluate.stats.decomposition.two_way_components`). Buckets
    then come from a third block (thirds of both axes: P >= 3 and F >= 3). ``"nested"``: halves of the pretraining
    seeds with all their runs (more instances of noise averaged away when runs of different pretrained models
    share nothing).

    Parameters
    ----------
    smaller, middle, larger
        Scores on the same instances, ``(N, P, F)``, ``(N, P, F, E)`` (last checkpoint) or ``(N, U)``. With
        ``noise_correction`` the middle size needs >= 4 units (>= 6 for ``by_bucket``) and the others >= 2; with
        crossed seeds every size needs P >= 2 and F >= 2 (P >= 3 and F >= 3 for ``by_bucket``).
    correlation
        ``"pearson"`` (the paper's Table 12) or ``"spearman"``.
    buckets
        Number of equal-width accuracy buckets.

    Examples
    --------
    >>> import numpy as np
    >>> small = np.array([[0, 0], [0, 0], [1, 1], [0, 0]])   # 4 instances x 2 units
    >>> mid = np.array([[1, 1], [0, 0], [1, 1], [1, 1]])
    >>> large = np.ones((4, 2))
    >>> m = momentum(small, mid, large)       # d1 = [1, 0, 0, 1], d2 = [0, 1, 0, 0]: no room left to improve
    >>> round(m.overall, 3), m.bucket_counts.tolist()
    (-0.577, [1, 0, 0, 0, 0, 0, 0, 0, 0, 3])
    """
    if correlation not in ("pearson", "spearman"):
        raise ValueError(f"correlation: expected 'pearson' or 'spearman', found {correlation!r}")
    if not isinstance(buckets, (int, np.integer)) or buckets < 1:
        raise ValueError(f"buckets: expected a positive integer, found {buckets!r}")
    if seed_design not in ("crossed", "nested"):
        raise ValueError(f"seed_design: expected 'crossed' or 'nested', found {seed_design!r}")
    if noise_correction and seed_design == "crossed":
        grids = [last_checkpoint(as_scores(x, name)) for name, x in
                 (("smaller", smaller), ("middle", middle), ("larger", larger))]
        if all(g.ndim == 3 and g.shape[1] >= 2 and g.shape[2] >= 2 for g in grids):
            check_same_instances(smaller=grids[0], middle=grids[1], larger=grids[2])
            return _crossed_momentum(grids, correlation, buckets)
    units = {name: as_units(as_scores(x, name), name) for name, x in
             (("smaller", smaller), ("middle", middle), ("larger", larger))}
    check_same_instances(**{k: u.values for k, u in units.items()})
    small, mid, large = (units[k].values for k in ("smaller", "middle", "larger"))
    acc_mid = mid.mean(axis=(1, 2))

    if not noise_correction:
        d1 = acc_mid - small.mean(axis=(1, 2))
        d2 = large.mean(axis=(1, 2)) - acc_mid
        bucket = _bucket_index(acc_mid, buckets)
        overall = _corr(d1, d2, correlation, None, None)
        by_bucket = _by_bucket(d1, d2, bucket, buckets, correlation, None, None)
    else:
        n_mid = mid.shape[1]
        if n_mid < 4:
            raise ValueError(f"middle: noise correction needs >= 4 units (2 per half), found {n_mid}")
        acc_small, noise_small = _mean_and_noise(small)
        acc_large, noise_large = _mean_and_noise(large)
        if np.isnan(noise_small).any() or np.isnan(noise_large).any():
            raise ValueError("smaller/larger: noise correction needs >= 2 units per size")

        def corrected_differences(first: np.ndarray, second: np.ndarray):
            m1, n1 = _mean_and_noise(first)
            m2, n2 = _mean_and_noise(second)
            return m1 - acc_small, acc_large - m2, n1 + noise_small, n2 + noise_large

        h = n_mid // 2
        d1, d2, noise1, noise2 = corrected_differences(mid[:, :h], mid[:, h : 2 * h])
        overall = _corr(d1, d2, correlation, noise1, noise2)
        by_bucket = np.full(buckets, np.nan)
        bucket = _bucket_index(acc_mid, buckets)
        if n_mid >= 6:
            # Buckets come from a third, disjoint group of middle units, so selecting a bucket does not couple
            # the noise of d1 and d2.
            k = n_mid // 3
            d1, d2, noise1, noise2 = corrected_differences(mid[:, :k], mid[:, k : 2 * k])
            bucket = _bucket_index(mid[:, 2 * k :].mean(axis=(1, 2)), buckets)
            by_bucket = _by_bucket(d1, d2, bucket, buckets, correlation, noise1, noise2)

    return Momentum(
        overall=overall,
        by_bucket=by_bucket,
        bucket_counts=np.bincount(bucket, minlength=buckets),
        correlation=correlation,
        noise_correction=noise_correction,
        bucket_edges=np.arange(buckets + 1) / buckets,
        seed_design="nested" if noise_correction else "any",
    )


def _crossed_momentum(grids: list[np.ndarray], correlation: Correlation, buckets: int) -> Momentum:
    """Noise-corrected momentum from disjoint blocks of pretraining x finetuning seeds (see :func:`momentum`): the
    moments are averaged over every assignment of the halves (thirds) to d1, d2 (and the bucket), then divided."""
    small, mid, large = grids
    n_p = min(g.shape[1] for g in grids)
    n_f = min(g.shape[2] for g in grids)
    components = [two_way_components(g) for g in grids]

    def differences(first: tuple[slice, slice], second: tuple[slice, slice]):
        m1, n_m1 = _block_mean_and_noise(mid, components[1], *first)
        s1, n_s1 = _block_mean_and_noise(small, components[0], *first)
        m2, n_m2 = _block_mean_and_noise(mid, components[1], *second)
        l2, n_l2 = _block_mean_and_noise(large, components[2], *second)
        if correlation == "spearman":  # ranks of the noisy differences, then the same disattenuation (approximate)
            return stats.rankdata(m1 - s1), stats.rankdata(l2 - m2), n_m1 + n_s1, n_m2 + n_l2
        return m1 - s1, l2 - m2, n_m1 + n_s1, n_m2 + n_l2

    def parts(k: int, j: int) -> tuple[list[slice], list[slice]]:
        return [slice(a * k, (a + 1) * k) for a in range(n_p // k)], [slice(b * j, (b + 1) * j) for b in range(n_f // j)]

    seeds, runs = parts(n_p // 2, n_f // 2)
    overall = _ratio(np.mean([_moments(*differences((seeds[i], runs[j]), (seeds[1 - i], runs[1 - j])))
                              for i in (0, 1) for j in (0, 1)], axis=0))
    by_bucket = np.full(buckets, np.nan)
    bucket_counts = np.bincount(_bucket_index(mid.mean(axis=(1, 2)), buckets), minlength=buckets)
    if n_p >= 3 and n_f >= 3:
        seeds, runs = parts(n_p // 3, n_f // 3)
        sums, counts = np.zeros((buckets, 3)), np.zeros(buckets)
        for a in range(3):
            for b in range(3):
                d1, d2, noise1, noise2 = differences((seeds[a], runs[b]), (seeds[(a + 1) % 3], runs[(b + 1) % 3]))
                bucket = _bucket_index(mid[:, seeds[(a + 2) % 3], runs[(b + 2) % 3]].mean(axis=(1, 2)), buckets)
                if a == b == 0:
                    bucket_counts = np.bincount(bucket, minlength=buckets)
                for k in range(buckets):  # a loop over buckets, not instances
                    sel = bucket == k
                    if sel.sum() >= _MIN_BUCKET:
                        sums[k] += _moments(d1[sel], d2[sel], noise1[sel], noise2[sel])
                        counts[k] += 1
        by_bucket = np.array([_ratio(sums[k] / counts[k]) if counts[k] else np.nan for k in range(buckets)])
    return Momentum(overall=overall, by_bucket=by_bucket, bucket_counts=bucket_counts, correlation=correlation,
                    noise_correction=True, bucket_edges=np.arange(buckets + 1) / buckets, seed_design="crossed")
