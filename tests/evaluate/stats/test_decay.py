import numpy as np
import pytest
from scipy import stats

from instdecay.evaluate import bh_decay_bound, decay_bounds, ensemble_by_pretrain, simulate

from designs import DESIGNS, draw


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



def test_different_designs_are_refused_unless_matched():
    rng = np.random.default_rng(0)
    ref = (rng.random((300, 4, 4)) < 0.6).astype(float)
    sub = (rng.random((300, 1, 4)) < 0.6).astype(float)
    with pytest.raises(ValueError, match=r"smaller has 4 pretraining seeds x 4 runs and larger 4 finetuning runs x 1 run"):
        decay_bounds(ref, sub)
    r = decay_bounds(ref, sub, match="subsample", n_boot=20)
    assert r.matched and r.rigorous and r.design == "4 units x 1 run per unit on each side"
    assert "finetuning seeds only" in r.noise_larger and r.noise_smaller == "pretraining and finetuning seeds"
    # pattern 0 compares the first run of each reference seed with the submission's runs
    np.testing.assert_allclose(r.difference, sub[:, 0].mean(axis=1) - ref[:, :, 0].mean(axis=1))
    odd = decay_bounds(ref[:, :3], 1 - ref[:, 1:], n_boot=0)  # 3 vs 3 seeds: 2 of them per pattern
    assert odd.design.startswith("2 units x 4 runs") and not odd.matched


def test_a_model_compared_with_itself_is_refused():
    x = (np.random.default_rng(0).random((50, 2, 2)) < 0.5).astype(float)
    with pytest.raises(ValueError, match="identical"):
        decay_bounds(x, x)
    with pytest.raises(ValueError, match=r"every run of one side appears identically on the other"):
        decay_bounds(x[:, :, :1], x)  # a copy of some of its runs
    y = (np.random.default_rng(1).random((50, 2, 2)) < 0.5).astype(float)
    y[:, 1, 0] = x[:, 0, 1]  # one copied run is reported (0/1 runs can coincide by chance)
    assert decay_bounds(x, y, n_boot=0).shared_runs == 1


def test_runs_per_unit_one_is_rigorous_on_the_same_target():
    x = (np.random.default_rng(0).random((50, 4, 3)) < 0.5).astype(float)
    y = (np.random.default_rng(1).random((50, 4, 3)) < 0.5).astype(float)
    assert not decay_bounds(x, y, n_boot=0).rigorous
    r = decay_bounds(x, y, runs_per_unit=1, n_boot=0, seed_design="nested")
    assert r.rigorous and r.design == "4 units x 1 run per unit on each side"
    np.testing.assert_allclose(r.difference, y[:, :, 0].mean(axis=1) - x[:, :, 0].mean(axis=1))
    # crossed finetuning seeds: one run per pretraining seed from distinct finetuning seeds (at most 3 here, made even)
    r = decay_bounds(x, y, runs_per_unit=1, n_boot=20)
    assert r.rigorous and r.design == "2 units x 1 run per unit on each side; distinct finetuning seeds"
    with pytest.raises(ValueError, match="runs_per_unit"):
        decay_bounds(x, y, runs_per_unit=4)


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




def _coverage(design, n_pretrain, kind, reps=50, n=1000, **kw):
    """Share of replicates of the audit model (tests/evaluate/stats/designs.py) whose decay / improve LCBs are at or
    below the true fractions, and the mean paper estimate and truth."""
    out = []
    for r in range(reps):
        dr = draw(DESIGNS[design], n, n_pretrain, 4, seed=r)
        s, l_ = dr.runs if kind == "runs" else dr.ensembles
        truth = (dr.true_decay_runs, dr.true_improve_runs) if kind == "runs" else \
            (dr.true_decay_ensembles, dr.true_improve_ensembles)
        b = decay_bounds(s, l_, n_boot=200, seed=r, **kw)
        out.append([b.decay_lcb <= truth[0], b.improve_lcb <= truth[1], b.decay, truth[0], b.decay_lcb])
    return np.array(out)


@pytest.mark.parametrize("design, n_pretrain, kind", [
    ("null", 10, "runs"), ("null", 10, "ensembles"), ("null-noshift", 4, "ensembles"),
    ("sharp", 10, "runs"), ("sharp", 10, "ensembles"), ("sharp", 4, "ensembles"),
    ("seedvar-null", 4, "runs"), ("seedvar-null", 2, "ensembles"),
])
def test_lcbs_cover_the_true_fractions(design, n_pretrain, kind):
    # The previous percentile bootstrap covered 0.45-0.90 in these designs (centred on the noisy d_i).
    res = _coverage(design, n_pretrain, kind)
    assert res[:, 0].mean() >= 0.9 and res[:, 1].mean() >= 0.9


def test_paper_estimate_is_biased_up_under_the_null_and_the_lcb_is_not():
    res = _coverage("null-noshift", 4, "runs", reps=30)
    assert (res[:, 3] == 0).all()
    assert res[:, 2].mean() > 0.005  # max over t: positive although nothing decays
    assert (res[:, 4] == 0).mean() >= 0.9


def test_sharp_design_bound_is_near_tight():
    res = _coverage("sharp", 10, "runs", reps=20)
    assert res[:, 4].mean() > 0.8 * res[:, 3].mean()  # the certified decay reaches most of the planted 5%


def test_matched_design_covers_a_single_pretrained_submission():
    # A 1 x 4 submission against a 4 x 4 reference from the same recipe, finetuning noise only: nothing decays.
    hits = []
    for r in range(40):
        dr = draw(DESIGNS["null-finetune-only"], 800, 4, 4, seed=r)
        b = decay_bounds(dr.runs[0], dr.runs[1][:, :1], match="subsample", n_boot=200, seed=r)
        hits.append(b.decay_lcb == 0 and b.improve_lcb == 0)
    assert np.mean(hits) >= 0.9


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


def test_bh_refuses_runs_that_are_not_independent_units():
    x = (np.random.default_rng(0).random((30, 4, 3)) < 0.5).astype(float)
    with pytest.raises(ValueError, match="one independent 0/1 value per pretraining seed"):
        bh_decay_bound(x, x[:, ::-1])
    assert bh_decay_bound(x[:, :, 0], x[:, ::-1, 1]).n_instances == 30


def test_shared_runs_inflate_the_paper_estimate_and_are_flagged():
    """Sides that share some runs (copies): counted, and the result warns."""
    sim = simulate(1500, sizes=("s", "l"), n_pretrain=4, n_finetune=1, step=0.0, step_sd=0.0, seed=0)
    s, l_ = sim.scores["s"].copy(), sim.scores["l"].copy()
    clean = decay_bounds(s, l_, n_boot=0)
    l_[:, :2] = s[:, :2]  # two of the larger side's runs are copies of the smaller side's
    r = decay_bounds(s, l_, n_boot=0)
    assert r.shared_runs == 2 and "inflate" in r.warning and clean.warning is None


def test_exact_paper_estimate_equals_integer_arithmetic():
    """For 0/1 runs the paper's estimate is an integer comparison of sums: d and b on one lattice."""
    def integer_estimate(a, b):
        h = a.shape[1] // 2
        a, b = a.astype(np.int64), b.astype(np.int64)
        d = b.sum((1, 2)) - a.sum((1, 2))
        base = (a[:, h:].sum((1, 2)) - a[:, :h].sum((1, 2))) + (b[:, h:].sum((1, 2)) - b[:, :h].sum((1, 2)))
        t = np.unique(np.concatenate([d, base]))
        gap = np.searchsorted(np.sort(d), t, side="right") - np.searchsorted(np.sort(base), t, side="right")
        return max(gap.max(), 0) / len(d), max(-gap.min(), 0) / len(d)

    for k in range(20):
        rng = np.random.default_rng(k)
        p = rng.random(2000)
        a = (rng.random((2000, 10, 5)) < p[:, None, None]).astype(float)
        q = np.clip(p + rng.normal(0, 0.1, 2000), 0, 1)
        b = (rng.random((2000, 10, 5)) < q[:, None, None]).astype(float)
        r = decay_bounds(a, b, n_boot=0)
        assert (r.decay, r.improve) == integer_estimate(a, b), k


def test_crossed_null_certifies_nothing_where_the_nested_baseline_does():
    """Finetuning seed f shared by every pretrained model and nothing decays: the nested baseline's halves share
    the finetuning seeds (the shared noise cancels in b, not in d) and certify decay; the crossed baseline does not."""
    nested, crossed = [], []
    for r in range(5):
        sim = simulate(3000, sizes=("s", "l"), n_pretrain=10, n_finetune=5, step=0.0, step_sd=0.0, pretrain_sd=0.2,
                       finetune_sd=0.3, finetune_shared_sd=1.0, seed=r)
        s, l_ = sim.scores["s"], sim.scores["l"]
        nested.append(decay_bounds(s, l_, seed_design="nested", n_boot=200, seed=r).decay_lcb)
        crossed.append(decay_bounds(s, l_, n_boot=200, seed=r).decay_lcb)
    assert np.mean(np.array(nested) > 0) >= 0.6
    assert np.mean(np.array(crossed) > 0) <= 0.2


@pytest.mark.parametrize("kw", [{}, {"seed_design": "nested"}, {"runs_per_unit": 1}])
def test_joint_code_counting_equals_separate_counting(monkeypatch, kw):
    """0/1 scores on a small lattice count d and b from one joint integer code per column; the bounds must be
    those of counting d and b separately."""
    import instdecay.evaluate.stats.decay as decay

    sim = simulate(3000, sizes=("s", "l"), n_pretrain=4, n_finetune=2, step=1.0, step_sd=1.0, seed=2)  # 9-17 points
    joint = decay_bounds(sim.scores["s"], sim.scores["l"], n_boot=100, seed=1, **kw)
    monkeypatch.setattr(decay, "_EXACT_FLOAT32", 1)  # no joint code fits: the separate path
    separate = decay_bounds(sim.scores["s"], sim.scores["l"], n_boot=100, seed=1, **kw)
    assert joint.improve_lcb > 0
    assert (joint.decay_lcb, joint.improve_lcb) == (separate.decay_lcb, separate.improve_lcb)
