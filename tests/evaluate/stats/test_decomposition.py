import numpy as np
import pytest

from instdecay.evaluate import decompose, simulate

# One instance, 2 pretraining x 2 finetuning x 2 checkpoints, components worked out by hand:
# run means m = [[.5, 1], [0, 1]], checkpoint variances s2 = [[.5, 0], [0, 0]], seed means [.75, .5].
HAND_4D = np.array([[[[1, 0], [1, 1]], [[0, 0], [1, 1]]]], dtype=float)


def test_hand_checked_nested_4d():
    d = decompose(HAND_4D, seed_design="nested")
    assert d.loss == pytest.approx(3 / 8)
    assert d.checkpoint_var == pytest.approx(0.5 / 4)  # mean of s2
    assert d.finetune_var == pytest.approx(((0.125 - 0.25 / 2) + (0.5 - 0.0)) / 2)  # 0.25
    assert d.pretrain_var == pytest.approx(0.03125 - (0.125 + 0.5) / 2 / 2)  # -0.125: unbiased may be < 0
    assert d.bias2 == pytest.approx((1 - 0.625) ** 2 - 0.03125 / 2)


def test_hand_checked_crossed_4d():
    # two-way layout of the run means: rows [.75, .5], columns [.25, 1], grand .625; MS_P = MS_E = 1/16, MS_F = 9/16
    d = decompose(HAND_4D)
    assert d.checkpoint_var == pytest.approx(0.5 / 4)
    assert d.pretrain_var == pytest.approx(0.0)  # (MS_P - MS_E) / F
    assert d.finetune_shared_var == pytest.approx(0.25)  # (MS_F - MS_E) / P
    assert d.finetune_var == pytest.approx(0.25 + 1 / 16 - 0.125 / 2)  # shared + MS_E - CkptVar / E
    assert d.bias2 == pytest.approx((1 - 0.625) ** 2 - (1 / 16 + 9 / 16 - 1 / 16) / 4)  # (1 - y)^2 - Var_hat(y)
    assert d.loss == pytest.approx(d.bias2 + d.pretrain_var + d.finetune_var + d.checkpoint_var)


def test_hand_checked_plugin_4d():
    d = decompose(HAND_4D, estimator="plugin")
    assert d.bias2 == pytest.approx((1 - 0.625) ** 2)
    assert d.pretrain_var == pytest.approx(0.125**2)  # population variance of [.75, .5]
    assert d.finetune_var == pytest.approx((0.0625 + 0.25) / 2)
    assert d.checkpoint_var == pytest.approx(0.25 / 4)


def test_hand_checked_3d_is_none_for_checkpoints():
    d = decompose([[[1, 1], [0, 1]]])
    assert d.checkpoint_var is None
    assert (d.loss, d.finetune_var, d.pretrain_var, d.bias2) == pytest.approx((0.25, 0.25, 0.0, 0.0))
    assert list(d.per_instance.columns) == ["loss", "bias2", "pretrain_var", "finetune_var", "finetune_shared_var"]
    assert list(decompose([[[1, 1], [0, 1]]], seed_design="nested").per_instance.columns) == [
        "loss", "bias2", "pretrain_var", "finetune_var"]


@pytest.mark.parametrize("estimator, design", [("unbiased", "crossed"), ("unbiased", "nested"), ("plugin", "nested")])
@pytest.mark.parametrize("shape", [(50, 3, 4), (50, 2, 3, 4)])
def test_components_sum_to_loss_per_instance(estimator, design, shape):
    probs = np.random.default_rng(0).random(shape)  # gold-label probabilities: squared loss
    d = decompose(probs, estimator, seed_design=design)
    parts = d.per_instance.drop(columns=["loss", "finetune_shared_var"], errors="ignore").sum(axis=1)
    np.testing.assert_allclose(parts, d.per_instance["loss"], atol=1e-12)
    np.testing.assert_allclose(d.per_instance["loss"], ((1 - probs) ** 2).reshape(50, -1).mean(axis=1))


@pytest.mark.parametrize("n_checkpoints", [None, 3])
def test_unbiased_against_simulation_where_plugin_is_biased(n_checkpoints):
    keys = ["bias2", "pretrain_var", "finetune_var"] + (["checkpoint_var"] if n_checkpoints else [])
    unbiased, plugin = [], []
    for r in range(150):
        sim = simulate(300, sizes=("a",), n_pretrain=4, n_finetune=3, n_checkpoints=n_checkpoints,
                       pretrain_shared_sd=0.0, seed=7, noise_seed=100 + r)
        u, p = decompose(sim.scores["a"]), decompose(sim.scores["a"], "plugin")
        unbiased.append([getattr(u, k) for k in keys])
        plugin.append([getattr(p, k) for k in keys])
    truth = np.array([sim.true_components["a"][k].mean() for k in keys])  # same truth in every replicate
    unbiased, plugin = np.array(unbiased), np.array(plugin)
    se = unbiased.std(axis=0, ddof=1) / np.sqrt(len(unbiased))
    assert np.all(np.abs(unbiased.mean(axis=0) - truth) < 4 * se), (unbiased.mean(axis=0), truth, se)
    # The plug-in pretraining variance absorbs finetuning noise: visibly too large.
    assert plugin[:, 1].mean() > truth[1] + 10 * se[1]
    assert plugin[:, 1].mean() > 2 * truth[1]


@pytest.mark.parametrize("shape", [(300, 4, 3), (300, 3, 3, 2)])
def test_bias2_is_the_unbiased_formula_in_both_designs(shape):
    x = np.random.default_rng(1).random(shape)
    y = x.mean(axis=3) if x.ndim == 4 else x
    p, f = y.shape[1:]
    rows, cols, grand = y.mean(axis=2), y.mean(axis=1), y.mean(axis=(1, 2))
    ms_p = f * rows.var(axis=1, ddof=1)
    ms_f = p * cols.var(axis=1, ddof=1)
    ms_e = ((y - rows[:, :, None] - cols[:, None, :] + grand[:, None, None]) ** 2).sum(axis=(1, 2)) / ((p - 1) * (f - 1))
    crossed = decompose(x).instance_values["bias2"]
    np.testing.assert_allclose(crossed, (1 - grand) ** 2 - (ms_p + ms_f - ms_e) / (p * f), atol=1e-12)
    nested = decompose(x, seed_design="nested").instance_values["bias2"]
    np.testing.assert_allclose(nested, (1 - grand) ** 2 - rows.var(axis=1, ddof=1) / p, atol=1e-12)


@pytest.mark.parametrize("n_checkpoints", [None, 3])
def test_crossed_decomposition_is_unbiased_where_the_nested_one_is_not(n_checkpoints):
    """Crossed finetuning seeds (an effect of finetuning seed f shared by every pretrained model): the two-way
    estimators are unbiased, the nested PretVar falls short by about Var(shared) / F."""
    keys = ["bias2", "pretrain_var", "finetune_var", "finetune_shared_var"] + (["checkpoint_var"] if n_checkpoints else [])
    crossed, nested = [], []
    for r in range(150):
        sim = simulate(300, sizes=("a",), n_pretrain=4, n_finetune=3, n_checkpoints=n_checkpoints,
                       pretrain_shared_sd=0.0, finetune_sd=0.5, finetune_shared_sd=0.7, seed=7, noise_seed=100 + r)
        c, nd = decompose(sim.scores["a"]), decompose(sim.scores["a"], seed_design="nested")
        crossed.append([getattr(c, k) for k in keys])
        nested.append(nd.pretrain_var)
    truth = np.array([sim.true_components["a"][k].mean() for k in keys])
    crossed = np.array(crossed)
    se = crossed.std(axis=0, ddof=1) / np.sqrt(len(crossed))
    assert np.all(np.abs(crossed.mean(axis=0) - truth) < 4 * se), (crossed.mean(axis=0), truth, se)
    assert truth[3] > 0.01  # the shared part is real here
    nested_se = np.std(nested, ddof=1) / np.sqrt(len(nested))
    assert np.mean(nested) < truth[1] - 4 * nested_se  # the nested estimator's negative bias


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((5, 4)), "expected shape"),
        (np.zeros((5, 2, 2, 2, 2)), "5-D"),
        (np.full((5, 2, 2), 1.5), r"\[0, 1\]"),
        (np.array([[[np.nan, 1], [1, 1]]]), "NaN"),
        (np.zeros((5, 1, 3)), ">= 2"),
        (np.zeros((0, 2, 2)), "empty"),
        ([["a"]], "numeric"),
    ],
)
def test_bad_input_is_a_clear_value_error(x, message):
    with pytest.raises(ValueError, match=message):
        decompose(x)


def test_unknown_estimator():
    with pytest.raises(ValueError, match="estimator"):
        decompose(np.zeros((2, 2, 2)), estimator="magic")
