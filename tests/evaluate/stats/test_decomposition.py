import numpy as np
import pytest

from instdecay.evaluate import decompose, simulate

# One instance, 2 pretraining x 2 finetuning x 2 checkpoints, components worked out by hand:
# run means m = [[.5, 1], [0, 1]], checkpoint variances s2 = [[.5, 0], [0, 0]], seed means [.75, .5].
HAND_4D = np.array([[[[1, 0], [1, 1]], [[0, 0], [1, 1]]]], dtype=float)


def test_hand_checked_unbiased_4d():
    d = decompose(HAND_4D)
    assert d.loss == pytest.approx(3 / 8)
    assert d.checkpoint_var == pytest.approx(0.5 / 4)  # mean of s2
    assert d.finetune_var == pytest.approx(((0.125 - 0.25 / 2) + (0.5 - 0.0)) / 2)  # 0.25
    assert d.pretrain_var == pytest.approx(0.03125 - (0.125 + 0.5) / 2 / 2)  # -0.125: unbiased may be < 0
    assert d.bias2 == pytest.approx((1 - 0.625) ** 2 - 0.03125 / 2)


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
    assert list(d.per_instance.columns) == ["loss", "bias2", "pretrain_var", "finetune_var"]


@pytest.mark.parametrize("estimator", ["unbiased", "plugin"])
@pytest.mark.parametrize("shape", [(50, 3, 4), (50, 2, 3, 4)])
def test_components_sum_to_loss_per_instance(estimator, shape):
    probs = np.random.default_rng(0).random(shape)  # gold-label probabilities: squared loss
    d = decompose(probs, estimator)
    parts = d.per_instance.drop(columns="loss").sum(axis=1)
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
