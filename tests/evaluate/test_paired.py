import numpy as np
import pytest
from scipy import stats

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
    assert r.delta > 0 and r.ci_low > 0 and r.p_value < 0.01
    flipped = paired_bootstrap(sim.scores["b"], sim.scores["a"], alternative="greater", n_boot=500, seed=1)
    assert flipped.delta == pytest.approx(-r.delta) and flipped.p_value > 0.99
    assert paired_bootstrap(sim.scores["a"], sim.scores["b"], n_boot=100, seed=3) == \
        paired_bootstrap(sim.scores["a"], sim.scores["b"], n_boot=100, seed=3)


def test_paired_bootstrap_is_calibrated_under_the_null():
    # Two models drawn from the same recipe on fresh instances: the 90% interval should cover 0 about 90%.
    covered = []
    for r in range(60):
        sim = simulate(400, sizes=("a", "b"), n_pretrain=5, n_finetune=2, step=0.0, step_sd=0.0,
                       pretrain_shared_sd=0.1, seed=r)
        res = paired_bootstrap(sim.scores["a"], sim.scores["b"], n_boot=300, confidence=0.9, seed=r)
        covered.append(res.ci_low <= 0 <= res.ci_high)
    assert 0.8 <= np.mean(covered) <= 1.0


def test_paired_bootstrap_bad_input():
    with pytest.raises(ValueError, match="same instances"):
        paired_bootstrap(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="alternative"):
        paired_bootstrap(np.zeros((4, 2)), np.zeros((4, 2)), alternative="bigger")
