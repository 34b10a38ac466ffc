import numpy as np
import pytest
from scipy import stats

from designs import DESIGNS, draw

from instdecay.evaluate import adjust_pvalues, mcnemar_test, paired_bootstrap, simulate


def test_mcnemar_counts_and_direction():
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0])
    b = np.array([0, 0, 0, 0, 0, 1, 1, 0, 1, 0])
    r = mcnemar_test(a, b, alternative="less")  # is B worse than A?
    assert (r.only_a, r.only_b) == (5, 1)
    assert r.p_value == pytest.approx(stats.binom.cdf(1, 6, 0.5))
    assert mcnemar_test(a, b, "greater").p_value == pytest.approx(stats.binom.sf(0, 6, 0.5))
    assert mcnemar_test(a, a).p_value == 1.0


def test_holm_and_bh_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.04, 0.09, 0.09, 0.5])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.04, 0.0533333, 0.0533333, 0.5], rtol=1e-5)
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues(p, "bonferroni")
    with pytest.raises(ValueError, match="p_values"):
        adjust_pvalues([0.1, 1.2])


def test_paired_bootstrap_direction_and_reproducibility():
    sim = simulate(2000, sizes=("a", "b"), n_pretrain=3, n_finetune=2, step=0.5, step_sd=0.2, seed=0)
    r = paired_bootstrap(sim.scores["a"], sim.scores["b"], alternative="greater", n_boot=500, seed=1)
    assert r.delta == pytest.approx(sim.scores["b"].mean() - sim.scores["a"].mean())
    assert r.delta > 0 and r.ci_low > 0 and r.p_value < 0.05
    flipped = paired_bootstrap(sim.scores["b"], sim.scores["a"], alternative="greater", n_boot=500, seed=1)
    assert flipped.delta == pytest.approx(-r.delta) and flipped.p_value == pytest.approx(1 - r.p_value)
    boot = paired_bootstrap(sim.scores["a"], sim.scores["b"], alternative="greater", interval="percentile", seed=1)
    assert boot.ci_low > 0 and boot.p_value < 0.01
    kw = dict(interval="percentile", n_boot=100, seed=3)
    assert paired_bootstrap(sim.scores["a"], sim.scores["b"], **kw) == paired_bootstrap(sim.scores["a"], sim.scores["b"], **kw)


@pytest.mark.parametrize("design, n_pretrain", [("seedvar", 4), ("seedvar", 2), ("realistic", 4)])
def test_t_interval_covers_with_few_seeds_and_large_seed_variance(design, n_pretrain):
    # Audit model: pretraining seeds shift every instance (seedvar: sd 0.3 on the logit). The percentile
    # multi-bootstrap covered 0.70 (P=2) and 0.85-0.88 (P=4) here.
    truth = DESIGNS[design]
    hits = []
    for r in range(60):
        dr = draw(truth, 1000, n_pretrain, 4, seed=500 + r)
        res = paired_bootstrap(*dr.runs, seed=r)
        hits.append(res.ci_low <= dr.true_delta <= res.ci_high)
    assert np.mean(hits) >= 0.9


def test_percentile_interval_warns_with_few_seeds():
    dr = draw(DESIGNS["realistic"], 300, 2, 3, seed=0)
    r = paired_bootstrap(*dr.runs, interval="percentile", n_boot=200)
    assert r.interval == "percentile" and "under-covers" in r.warning
    assert paired_bootstrap(*dr.runs).warning is None


def test_t_interval_matches_its_components_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.random((200, 3, 2)), rng.random((200, 4, 2))
    ma, mb = a.mean(axis=2), b.mean(axis=2)
    seed_a, seed_b = ma.mean(axis=0).var(ddof=1) / 3, mb.mean(axis=0).var(ddof=1) / 4
    x = mb.mean(axis=1) - ma.mean(axis=1)
    noise = (ma - ma.mean(axis=0)).var(axis=1, ddof=1).mean() / 3 + (mb - mb.mean(axis=0)).var(axis=1, ddof=1).mean() / 4
    inst = max(0.0, (x.var(ddof=1) - noise) / 200)
    r = paired_bootstrap(a, b, seed_design="nested")
    assert r.se == pytest.approx(np.sqrt(seed_a + seed_b + inst))
    assert r.df == pytest.approx((seed_a + seed_b + inst) ** 2 / (seed_a**2 / 2 + seed_b**2 / 3))
    half = stats.t.ppf(0.975, r.df) * r.se
    assert (r.ci_low, r.ci_high) == pytest.approx((r.delta - half, r.delta + half))


def _two_way_variance(y):
    """Var_hat of the grand mean of a (..., P, F) two-way layout, written out: (MS_P + MS_F - MS_E) / (P F)."""
    p, f = y.shape[-2:]
    rows, cols, g = y.mean(-1), y.mean(-2), y.mean((-2, -1))
    ms_p = f * rows.var(axis=-1, ddof=1)
    ms_f = p * cols.var(axis=-1, ddof=1)
    ms_e = ((y - rows[..., None] - cols[..., None, :] + g[..., None, None]) ** 2).sum((-2, -1)) / ((p - 1) * (f - 1))
    return (ms_p + ms_f - ms_e) / (p * f)


def test_crossed_t_interval_matches_its_components_by_hand():
    rng = np.random.default_rng(0)
    a = rng.random((200, 3, 2)) + 0.3 * rng.random((200, 1, 2))  # a finetuning seed shared by every pretrained model
    b = rng.random((200, 4, 2))
    a, b = a / a.max(), b
    seed_a, seed_b = _two_way_variance(a.mean(axis=0)), _two_way_variance(b.mean(axis=0))
    noise = _two_way_variance(a).mean() + _two_way_variance(b).mean()
    x = b.mean(axis=(1, 2)) - a.mean(axis=(1, 2))
    inst = max(0.0, (x.var(ddof=1) - noise) / 200)
    assert seed_a > 0 and seed_b > 0  # this draw has no negative variance estimate to fall back from
    r = paired_bootstrap(a, b)
    assert r.se == pytest.approx(np.sqrt(seed_a + seed_b + inst), rel=1e-9)
    assert r.se != pytest.approx(paired_bootstrap(a, b, seed_design="nested").se, rel=1e-3)


def test_paired_seeds_t_interval_has_seeds_minus_one_df():
    rng = np.random.default_rng(2)
    a, b = rng.random((300, 3, 2)), rng.random((300, 3, 2))
    assert paired_bootstrap(a, b, paired_seeds=True).df == 2


def test_paired_seeds_and_nested_resampling():
    # Two models that share pretraining seeds (a common shift per seed): pairing the seeds removes that noise.
    rng = np.random.default_rng(1)
    shift = rng.normal(0, 0.8, 4)
    base = rng.normal(0, 1.5, 1500)
    logit = base[:, None, None] + shift[None, :, None] + rng.normal(0, 0.3, (1500, 4, 3))
    a = (rng.random(logit.shape) < 1 / (1 + np.exp(-logit))).astype(float)
    b = (rng.random(logit.shape) < 1 / (1 + np.exp(-(logit + 0.2)))).astype(float)
    unpaired = paired_bootstrap(a, b, interval="percentile", n_boot=400, seed=0)
    paired = paired_bootstrap(a, b, interval="percentile", n_boot=400, paired_seeds=True, seed=0)
    nested = paired_bootstrap(a, b, interval="percentile", n_boot=400, resample="nested", seed=0)
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert width(paired) < 0.5 * width(unpaired)
    assert width(nested) > width(unpaired)  # finetuning noise counted a second time
    assert paired_bootstrap(a, b, paired_seeds=True).se < 0.5 * paired_bootstrap(a, b).se
    with pytest.raises(ValueError, match="paired_seeds"):
        paired_bootstrap(a, b[:, :3], paired_seeds=True)


def test_paired_bootstrap_bad_input():
    with pytest.raises(ValueError, match="same instances"):
        paired_bootstrap(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="alternative"):
        paired_bootstrap(np.zeros((4, 2)), np.zeros((4, 2)), alternative="bigger")
    with pytest.raises(ValueError, match="interval"):
        paired_bootstrap(np.zeros((4, 2)), np.zeros((4, 2)), interval="bca")
