import numpy as np

from instdecay.evaluate import simulate


def test_truth_components_add_up_to_expected_loss():
    sim = simulate(500, sizes=("a", "b"), n_pretrain=2, n_finetune=2, n_checkpoints=2, seed=0)
    for k, name in enumerate(sim.sizes):
        total = sum(sim.true_components[name].values())
        np.testing.assert_allclose(total, 1 - sim.true_accuracy[:, k], atol=1e-10)  # 0/1 loss: E[(1-c)^2] = 1 - Acc


def test_empirical_accuracy_matches_truth():
    sim = simulate(20000, sizes=("a",), n_pretrain=4, n_finetune=4, pretrain_shared_sd=0.0, seed=1)
    assert abs(sim.scores["a"].mean() - sim.true_accuracy.mean()) < 0.005


def test_noise_seed_keeps_the_truth_and_changes_the_draws():
    a = simulate(100, sizes=2, n_pretrain=2, n_finetune=2, seed=3, noise_seed=1)
    b = simulate(100, sizes=2, n_pretrain=2, n_finetune=2, seed=3, noise_seed=2)
    np.testing.assert_array_equal(a.true_accuracy, b.true_accuracy)
    assert not np.array_equal(a.scores["size0"], b.scores["size0"])


def test_no_steps_means_no_true_decay():
    sim = simulate(300, sizes=("s", "l"), step=0.0, step_sd=0.0, seed=0)
    assert sim.true_decay("s", "l") == 0.0 and sim.true_improve("s", "l") == 0.0
