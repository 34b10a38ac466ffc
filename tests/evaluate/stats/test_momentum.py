import numpy as np
import pytest
from scipy import stats

from instdecay.evaluate import momentum, simulate
from instdecay.evaluate.stats.momentum import _bucket_index


def test_bucket_edges_are_integer_safe_and_closed_at_one():
    # The notebook's float edges put 0.3 and 0.7 in the bucket below and 0.6 in none; 1.0 in none.
    acc = np.array([0.0, 0.0999, 0.1, 0.3, 0.6, 0.7, 0.9, 0.95, 1.0])
    np.testing.assert_array_equal(_bucket_index(acc, 10), [0, 0, 1, 3, 6, 7, 9, 9, 9])
    acc_from_counts = np.arange(11) / 10  # accuracies attainable with 10 runs
    np.testing.assert_array_equal(_bucket_index(acc_from_counts, 10), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9])


def test_naive_estimate_matches_scipy_per_bucket():
    rng = np.random.default_rng(0)
    s, m, l_ = ((rng.random((2000, 5, 2)) < p).astype(float) for p in (0.5, 0.6, 0.7))
    r = momentum(s, m, l_)
    d1 = m.mean(axis=(1, 2)) - s.mean(axis=(1, 2))
    d2 = l_.mean(axis=(1, 2)) - m.mean(axis=(1, 2))
    assert r.overall == pytest.approx(stats.pearsonr(d1, d2).statistic)
    bucket = _bucket_index(m.mean(axis=(1, 2)), 10)
    for k in range(10):
        sel = bucket == k
        expected = stats.pearsonr(d1[sel], d2[sel]).statistic if sel.sum() >= 3 else np.nan
        np.testing.assert_allclose(r.by_bucket[k], expected, atol=1e-12)
    sp = momentum(s, m, l_, correlation="spearman")
    assert sp.overall == pytest.approx(stats.spearmanr(d1, d2).statistic)


def test_small_buckets_are_nan():
    s = np.array([[0, 0], [1, 1], [0, 1]], dtype=float)
    r = momentum(s, s[::-1], s)
    assert np.isnan(r.by_bucket).all()


@pytest.mark.parametrize("true_momentum", [0.0, 0.5])
def test_noise_correction_recovers_true_correlation_where_naive_fails(true_momentum):
    naive, corrected, naive_b, corrected_b = [], [], [], []
    for r in range(10):
        sim = simulate(5000, sizes=("s", "m", "l"), n_pretrain=9, n_finetune=3, step_sd=0.8,
                       momentum=true_momentum, seed=3, noise_seed=r)
        a = momentum(*(sim.scores[k] for k in "sml"))
        b = momentum(*(sim.scores[k] for k in "sml"), noise_correction=True, seed_design="nested")
        naive.append(a.overall)
        corrected.append(b.overall)
        naive_b.append(a.by_bucket)
        corrected_b.append(b.by_bucket)
    truth = sim.true_momentum("s", "m", "l")
    acc = sim.true_accuracy
    bucket = _bucket_index(acc[:, 1], 10)
    d1, d2 = acc[:, 1] - acc[:, 0], acc[:, 2] - acc[:, 1]
    truth_b = np.array([np.corrcoef(d1[bucket == k], d2[bucket == k])[0, 1] for k in range(10)])

    assert abs(np.mean(corrected) - truth) < 0.05
    assert np.mean(naive) < truth - 0.2  # the shared middle-size noise pulls the naive value down
    # Per bucket (middle buckets, where there are enough instances): corrected is close, naive is not.
    mid = slice(1, 9)
    err_corrected = np.abs(np.nanmean(corrected_b, axis=0)[mid] - truth_b[mid]).mean()
    err_naive = np.abs(np.nanmean(naive_b, axis=0)[mid] - truth_b[mid]).mean()
    assert err_corrected < 0.15 and err_naive > 2 * err_corrected


@pytest.mark.parametrize("n_pretrain, n_finetune", [(4, 4), (10, 5)])
def test_crossed_correction_is_unbiased_with_shared_finetuning_seeds(n_pretrain, n_finetune):
    """Finetuning seed f shared by every pretrained model: the nested halves share it in d1 and d2 (biased); the
    crossed blocks do not."""
    crossed, nested = [], []
    for r in range(12):
        sim = simulate(5000, sizes=("s", "m", "l"), n_pretrain=n_pretrain, n_finetune=n_finetune, step_sd=0.8,
                       momentum=0.5, finetune_shared_sd=0.6, seed=3, noise_seed=r)
        x = [sim.scores[k] for k in "sml"]
        crossed.append(momentum(*x, noise_correction=True).overall)
        nested.append(momentum(*x, noise_correction=True, seed_design="nested").overall)
    truth = sim.true_momentum("s", "m", "l")
    assert abs(np.mean(crossed) - truth) < 0.05
    assert np.mean(nested) < truth - 0.1


def test_noise_correction_needs_enough_units():
    x = np.zeros((10, 3, 2))
    with pytest.raises(ValueError, match=">= 4 units"):
        momentum(x, x, x, noise_correction=True, seed_design="nested")
    with pytest.raises(ValueError, match=">= 4 units"):
        momentum(x[:, :, :1], x[:, :, :1], x[:, :, :1], noise_correction=True)  # one run per seed: nested halves
    r = momentum(x, np.zeros((10, 4, 2)) + 0.5, x + 1, noise_correction=True, seed_design="nested")
    assert np.isnan(r.by_bucket).all()  # 4 units: enough for halves, not for a bucketing third
    r = momentum(x, np.zeros((10, 3, 2)) + 0.5, x + 1, noise_correction=True)
    assert r.seed_design == "crossed" and np.isnan(r.by_bucket).all()  # 2 finetuning seeds: no third for buckets


def test_bad_arguments():
    x = np.zeros((10, 2, 2))
    with pytest.raises(ValueError, match="correlation"):
        momentum(x, x, x, correlation="kendall")
    with pytest.raises(ValueError, match="same instances"):
        momentum(x, x[:5], x)
