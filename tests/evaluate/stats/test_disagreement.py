import itertools

import numpy as np
import pytest

from instdecay.evaluate import seed_disagreement


def brute_force(x):
    n, p, f = x.shape
    within = [np.abs(x[:, j, a] - x[:, j, b]).mean() for j in range(p) for a, b in itertools.combinations(range(f), 2)]
    across = [np.abs(x[:, j, a] - x[:, k, b]).mean()
              for j, k in itertools.combinations(range(p), 2) for a in range(f) for b in range(f)]
    return np.mean(within), np.mean(across)


def test_closed_form_matches_pairwise_definition():
    x = (np.random.default_rng(1).random((200, 4, 3)) < 0.7).astype(float)
    r = seed_disagreement(x)
    within, across = brute_force(x)
    assert r.within_pretrain == pytest.approx(within)
    assert r.across_pretrain == pytest.approx(across)
    assert r.accuracy_std == pytest.approx(x.mean(axis=0).ravel().std(ddof=1))


def test_four_d_uses_last_checkpoint():
    x = (np.random.default_rng(2).random((50, 3, 2, 4)) < 0.5).astype(float)
    assert seed_disagreement(x) == seed_disagreement(x[..., -1])


def test_probabilities_are_rejected():
    with pytest.raises(ValueError, match="0/1"):
        seed_disagreement(np.full((3, 2, 2), 0.5))
