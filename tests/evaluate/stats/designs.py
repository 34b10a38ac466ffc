"""An audit model for coverage tests, written independently of ``instdecay.evaluate.simulate``.

Two sizes S (smaller) and L (larger). Run (p, f) of size s on instance i is correct with probability

    sigmoid(m[i, s] + g[s, p] + u[i, s, p] + h[i, s, f] + e[i, s, p, f])

with a global shift ``g`` per pretraining seed (shared by every instance), an instance-level pretraining
effect ``u``, a finetuning-seed effect ``h`` shared by every pretrained model of the size (crossed finetuning
seeds; in some designs shared by both sizes too, as when every size's run f has the same seed streams) and a
finetuning effect ``e``, all centred normal with per-design SDs. Ensembles are one 0/1
value per pretraining seed: the majority vote of its finetuning runs (a fair coin on ties). Truths are
computed by Gauss-Hermite quadrature: per-instance run accuracy, ensemble accuracy and their differences.

Also used by ``benchmarks/coverage.py`` (which prints the full coverage table).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import stats

_NODES, _WEIGHTS = hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class Design:
    """Instance logits for S and L, and seed-effect SDs (global shift, instance pretraining, finetuning)."""

    name: str
    sd_global: float
    sd_pretrain: tuple[float, float]
    sd_finetune: tuple[float, float]
    planted: float = 0.0  # share of instances that decay (sharp designs: Acc_S ~ 1 and Acc_L ~ 0)
    step: float = 0.0  # mean logit gain from S to L on the other instances
    step_sd: float = 0.0  # its per-instance SD (0: ties, nothing decays)
    sd_shared: float = 0.0  # finetuning-seed effect shared by the pretrained models of a size (crossed seeds)
    shared_across_sizes: bool = False  # the same finetuning-seed effect for both sizes
    drop: float | None = None  # planted instances: L's logit this much below S's (None: sharp, +8 to -8)


DESIGNS = {
    # nothing decays: both sizes identical (ties); with and without global seed shifts
    "null": Design("null", 0.15, (0.4, 0.4), (0.8, 0.8)),
    "null-noshift": Design("null-noshift", 0.0, (0.4, 0.4), (0.8, 0.8)),
    # seed noise is finetuning noise only: a single pretrained model stands for its size
    "null-finetune-only": Design("null-finetune-only", 0.0, (0.0, 0.0), (0.8, 0.8)),
    # near-tight: 5% of instances with Acc_S ~ 1 and Acc_L ~ 0, ties elsewhere (the bound can reach the truth)
    "sharp": Design("sharp", 0.15, (0.4, 0.4), (0.8, 0.8), planted=0.05),
    # a gain on average, losses on some instances, more finetuning noise at the larger size
    "realistic": Design("realistic", 0.05, (0.3, 0.3), (0.6, 0.8), step=1.0, step_sd=1.2),
    # large seed variance: pretraining seeds shift every instance (sd 0.3 on the logit)
    "seedvar": Design("seedvar", 0.3, (0.5, 0.5), (0.8, 0.8), step=1.0, step_sd=1.2),
    "seedvar-null": Design("seedvar-null", 0.3, (0.5, 0.5), (0.8, 0.8)),
    # crossed finetuning seeds: run f of every pretrained model shares an effect (and, second, of both sizes)
    "null-crossed": Design("null-crossed", 0.1, (0.3, 0.3), (0.4, 0.4), sd_shared=0.8),
    "null-crossed-sizes": Design("null-crossed-sizes", 0.1, (0.3, 0.3), (0.4, 0.4), sd_shared=0.8,
                                 shared_across_sizes=True),
    "sharp-crossed": Design("sharp-crossed", 0.1, (0.3, 0.3), (0.4, 0.4), planted=0.05, sd_shared=0.8),
    # power: 2% or 5% of instances decay by a moderate (logit -1) or strong (logit -3.5) drop, ties elsewhere
    "decay2-moderate": Design("decay2-moderate", 0.05, (0.3, 0.3), (0.6, 0.6), planted=0.02, drop=1.0),
    "decay5-moderate": Design("decay5-moderate", 0.05, (0.3, 0.3), (0.6, 0.6), planted=0.05, drop=1.0),
    "decay2-strong": Design("decay2-strong", 0.05, (0.3, 0.3), (0.6, 0.6), planted=0.02, drop=3.5),
    "decay5-strong": Design("decay5-strong", 0.05, (0.3, 0.3), (0.6, 0.6), planted=0.05, drop=3.5),
    "decay5-strong-crossed": Design("decay5-strong-crossed", 0.05, (0.3, 0.3), (0.4, 0.4), planted=0.05,
                                    drop=3.5, sd_shared=0.6),
}


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(z / 2))


@dataclass(frozen=True)
class Draw:
    runs: tuple[np.ndarray, np.ndarray]  # (N, P, F) 0/1 correctness of S and L
    ensembles: tuple[np.ndarray, np.ndarray]  # (N, P) majority votes
    true_decay_runs: float
    true_improve_runs: float
    true_decay_ensembles: float
    true_improve_ensembles: float
    true_delta: float  # population mean run accuracy L - S (instances drawn from the design)
    true_delta_sample: float  # mean over these instances of Acc_L - Acc_S
    run_accuracy: tuple[np.ndarray, np.ndarray]  # (N,) Acc_S, Acc_L over all seeds
    accuracy_given_seed: tuple[np.ndarray, np.ndarray]  # (N, P): accuracy over finetuning runs of each pretrained model


def _logits(design: Design, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m_s = rng.normal(1.0, 1.5, n)
    m_l = m_s + design.step + design.step_sd * rng.standard_normal(n)
    planted = rng.random(n) < design.planted
    if design.drop is None:
        m_s[planted], m_l[planted] = 8.0, -8.0
    else:
        m_l[planted] = m_s[planted] - design.drop
    return m_s, m_l


def _run_accuracy(m: np.ndarray, sd: float) -> np.ndarray:
    return _sigmoid(m[:, None] + sd * _NODES) @ _WEIGHTS


def _ensemble_accuracy(m: np.ndarray, sd_seed: float, sd_finetune: float, n_finetune: int) -> np.ndarray:
    """P(majority of F runs correct) averaged over the seed-level effect (global + instance pretraining)."""
    v = m[:, None] + sd_seed * _NODES  # (N, K)
    pi = _sigmoid(v[..., None] + sd_finetune * _NODES) @ _WEIGHTS  # per-run accuracy given the seed
    k = np.arange(n_finetune + 1)
    pmf = stats.binom.pmf(k, n_finetune, pi[..., None])  # (N, K, F+1)
    win = (k > n_finetune / 2) + 0.5 * (k == n_finetune / 2)
    return (pmf @ win) @ _WEIGHTS


def draw(design: Design, n: int, n_pretrain: int, n_finetune: int, seed: int) -> Draw:
    rng = np.random.default_rng(seed)
    m = _logits(design, n, rng)
    runs, ensembles, run_acc, ens_acc, seed_acc = [], [], [], [], []
    shared = design.sd_shared * rng.standard_normal((n, 1, n_finetune))
    for side in (0, 1):
        sd_u, sd_e = design.sd_pretrain[side], design.sd_finetune[side]
        g = design.sd_global * rng.standard_normal(n_pretrain)
        u = sd_u * rng.standard_normal((n, n_pretrain))
        e = sd_e * rng.standard_normal((n, n_pretrain, n_finetune))
        h = shared if design.shared_across_sizes else design.sd_shared * rng.standard_normal((n, 1, n_finetune))
        c = (rng.random((n, n_pretrain, n_finetune)) < _sigmoid(m[side][:, None, None] + g[None, :, None]
                                                                  + u[:, :, None] + h + e)).astype(float)
        votes = c.mean(axis=2)
        ens = np.where(votes == 0.5, rng.random(votes.shape) < 0.5, votes > 0.5).astype(float)
        runs.append(c)
        ensembles.append(ens)
        total = np.sqrt(design.sd_global**2 + sd_u**2 + sd_e**2 + design.sd_shared**2)
        run_acc.append(_run_accuracy(m[side], total))
        sd_run = np.hypot(sd_e, design.sd_shared)  # the finetuning noise of one pretrained model's runs
        ens_acc.append(_ensemble_accuracy(m[side], np.hypot(design.sd_global, sd_u), sd_run, n_finetune))
        seed_acc.append(np.stack([_run_accuracy(m[side] + g[p] + u[:, p], sd_run) for p in range(n_pretrain)], axis=1))
    delta = run_acc[1] - run_acc[0]
    ens_delta = ens_acc[1] - ens_acc[0]
    return Draw(
        runs=(runs[0], runs[1]), ensembles=(ensembles[0], ensembles[1]),
        true_decay_runs=float((delta < 0).mean()), true_improve_runs=float((delta > 0).mean()),
        true_decay_ensembles=float((ens_delta < 0).mean()), true_improve_ensembles=float((ens_delta > 0).mean()),
        true_delta=population_delta(design), true_delta_sample=float(delta.mean()),
        run_accuracy=(run_acc[0], run_acc[1]), accuracy_given_seed=(seed_acc[0], seed_acc[1]),
    )


@lru_cache(maxsize=None)
def population_delta(design: Design, n: int = 400_000) -> float:
    """Expected run-accuracy difference L - S over the design's instance distribution (fixed-seed Monte Carlo
    over instances, quadrature over seeds)."""
    m_s, m_l = _logits(design, n, np.random.default_rng(12345))
    acc = [_run_accuracy(m, np.sqrt(design.sd_global**2 + design.sd_pretrain[k]**2 + design.sd_finetune[k]**2
                                    + design.sd_shared**2))
           for k, m in enumerate((m_s, m_l))]
    return float((acc[1] - acc[0]).mean())
