import numpy as np
import pytest
from scipy import stats

from instdecay.evaluate import bh_decay_bound, decay_bounds, ensemble_by_pretrain, simulate


def test_hand_checked_exact_ecdf_off_the_grid():
    # Differences that a 0.01 grid would merge: d = [-0.004, -0.003, 0.5, 0.5]; baseline = 0.
    small = np.array([[0.504, 0.504], [0.503, 0.503], [0.0, 0.0], [0.25, 0.25]])
    large = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.75, 0.75]])
    r = decay_bounds(small, large, n_boot=0)
    np.testing.assert_allclose(r.difference, [-0.004, -0.003, 0.5, 0.5])
    np.testing.assert_allclose(r.baseline, 0.0)
    # ECDF_d(-0.003) = 2/4 and ECDF_d'(-0.003) = 0: decay 0.5 at t = -0.003. P(d > t) - P(d' > t) is 0.5 at t = 0.
    assert r.decay == 0.5 and r.decay_threshold == pytest.approx(-0.003)
    assert r.improve == 0.5 and r.improve_threshold == 0.0
    np.testing.assert_allclose(r.thresholds, [-0.004, -0.003, 0.0, 0.5])
    np.testing.assert_allclose(r.ecdf_difference, [0.25, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(r.ecdf_baseline, [0.0, 0.0, 1.0, 1.0])


def test_baseline_uses_halves_of_pretraining_seeds():
    # 1 instance, 4 pretraining seeds x 1 finetuning seed: halves are seeds (0, 1) and (2, 3).
    small = np.array([[[1], [1], [0], [0]]], dtype=float)
    large = np.array([[[0], [1], [1], [1]]], dtype=float)
    r = decay_bounds(small, large, n_boot=0)
    assert r.difference[0] == pytest.approx(0.75 - 0.5)
    assert r.baseline[0] == pytest.approx(((0 - 1) + (1 - 0.5)) / 2)
    assert r.noise_smaller == r.noise_larger == "pretraining and finetuning seeds"


def test_odd_counts_use_an_even_number_of_units():
    x = (np.random.default_rng(0).random((30, 5, 2)) < 0.6).astype(float)
    r = decay_bounds(x, x[:, :3], n_boot=0)
    assert r.units_used == (4, 2)
    np.testing.assert_allclose(r.difference, x[:, :2].mean(axis=(1, 2)) - x[:, :4].mean(axis=(1, 2)))


def test_single_pretraining_seed_splits_finetuning_runs_and_says_so():
    x = (np.random.default_rng(0).random((30, 1, 4)) < 0.6).astype(float)
    y = (np.random.default_rng(1).random((30, 3, 2)) < 0.6).astype(float)
    r = decay_bounds(x, y, n_boot=10)
    assert "finetuning seeds only" in r.noise_smaller
    assert r.noise_larger == "pretraining and finetuning seeds"
    assert r.units_used == (4, 2)


def test_four_d_uses_the_last_checkpoint():
    rng = np.random.default_rng(3)
    s, l_ = (rng.random((40, 2, 2, 3)) < 0.5).astype(float), (rng.random((40, 2, 2, 3)) < 0.6).astype(float)
    a, b = decay_bounds(s, l_, n_boot=20, seed=1), decay_bounds(s[..., -1], l_[..., -1], n_boot=20, seed=1)
    assert a.to_dict() == b.to_dict()


def test_seeded_results_are_reproducible():
    sim = simulate(300, sizes=("s", "l"), n_pretrain=2, n_finetune=2, seed=0)
    a = decay_bounds(sim.scores["s"], sim.scores["l"], n_boot=50, seed=5)
    b = decay_bounds(sim.scores["s"], sim.scores["l"], n_boot=50, seed=np.random.default_rng(5))
    assert a.to_dict() == b.to_dict()


def _replicates(n_rep, **kw):
    out = []
    for r in range(n_rep):
        sim = simulate(1000, sizes=("s", "l"), n_pretrain=4, n_finetune=3, seed=11, noise_seed=r, **kw)
        b = decay_bounds(sim.scores["s"], sim.scores["l"], n_boot=200, seed=r)
        out.append([b.decay, b.decay_crossfit, b.decay_lcb, b.improve, b.improve_crossfit, b.improve_lcb])
    return sim, np.array(out)


def test_null_ladder_paper_estimate_is_biased_up_and_crossfit_is_not():
    # Same truth at both sizes and no seed effect shared across instances: no instance decays or improves.
    sim, res = _replicates(60, step=0.0, step_sd=0.0, pretrain_shared_sd=0.0)
    assert sim.true_decay("s", "l") == 0.0
    se = res.std(axis=0, ddof=1) / np.sqrt(len(res))
    assert res[:, 0].mean() > 5 * se[0]  # max over t: positive although nothing decays
    assert abs(res[:, 1].mean()) < 3 * se[1]  # cross-fitted: centred on the truth, 0
    assert abs(res[:, 4].mean()) < 3 * se[4]
    assert (res[:, 2] <= 0).mean() >= 0.95  # LCB below the truth in >= 95% of runs
    assert (res[:, 5] <= 0).mean() >= 0.95


def test_planted_decay_bounds_hold_on_average_and_lcb_covers():
    sim, res = _replicates(60, step=0.6, step_sd=0.8, momentum=0.0)
    decay, improve = sim.true_decay("s", "l"), sim.true_improve("s", "l")
    assert 0.05 < decay < 0.5
    assert res[:, 0].mean() <= decay and res[:, 1].mean() <= decay
    assert res[:, 3].mean() <= improve and res[:, 4].mean() <= improve
    assert res[:, 0].mean() > 0  # and the bound finds some of the decay
    assert (res[:, 2] <= decay).mean() >= 0.95
    assert (res[:, 5] <= improve).mean() >= 0.95


@pytest.mark.parametrize(
    "s, l_, message",
    [
        (np.zeros((5, 2, 2)), np.zeros((6, 2, 2)), "same instances"),
        (np.zeros(5), np.zeros((5, 2)), "expected shape"),
        (np.zeros((5, 1, 1)), np.zeros((5, 2, 2)), "at least 2 runs"),
        (np.full((5, 2), 2.0), np.zeros((5, 2)), r"\[0, 1\]"),
    ],
)
def test_bad_input(s, l_, message):
    with pytest.raises(ValueError, match=message):
        decay_bounds(s, l_)


def test_ensemble_by_pretrain_averages_probabilities_then_argmax():
    probs = np.array([[[[0.9, 0.1], [0.2, 0.8], [0.2, 0.8]], [[0.6, 0.4], [0.6, 0.4], [0.0, 1.0]]]])
    # seed 0: mean (0.433, 0.567) -> class 1; seed 1: mean (0.4, 0.6) -> class 1 (majority vote would say 0).
    np.testing.assert_array_equal(ensemble_by_pretrain(probs, [1]), [[1.0, 1.0]])
    np.testing.assert_array_equal(ensemble_by_pretrain(probs, [0]), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="labels"):
        ensemble_by_pretrain(probs, [2])


def test_bh_p_values_match_fisher_exact():
    rng = np.random.default_rng(4)
    s = (rng.random((40, 6)) < 0.7).astype(float)
    l_ = (rng.random((40, 5)) < 0.5).astype(float)
    r = bh_decay_bound(s, l_)
    expected = [stats.fisher_exact([[a, 6 - a], [b, 5 - b]], alternative="greater").pvalue
                for a, b in zip(s.sum(axis=1), l_.sum(axis=1))]
    np.testing.assert_allclose(r.p_values, expected)


def test_bh_certifies_nothing_with_two_models_per_size():
    # App. F: with 2 + 2 models the smallest one-sided Fisher p-value is 1/6, far above what BH needs
    # when 5 of 100 instances decay perfectly; the random baseline still certifies them.
    s, l_ = np.ones((100, 2)), np.ones((100, 2))
    l_[:5] = 0
    r = bh_decay_bound(s, l_)
    assert r.p_values.min() == pytest.approx(1 / 6)
    assert r.bound == 0.0
    assert decay_bounds(s, l_, n_boot=0).decay == pytest.approx(0.05)


def test_bh_bound_is_valid_on_simulated_ensembles():
    bounds = []
    for r in range(20):
        sim = simulate(1000, sizes=("s", "l"), n_pretrain=10, n_finetune=1, step=0.3, step_sd=1.5, seed=2, noise_seed=r)
        bounds.append(bh_decay_bound(sim.scores["s"][:, :, 0], sim.scores["l"][:, :, 0]).bound)
    assert 0 < np.mean(bounds) <= sim.true_decay("s", "l")
