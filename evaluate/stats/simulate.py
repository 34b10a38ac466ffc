"""Simulated ladders of model sizes with known per-instance ground truth, for tests and documentation.

Model (logit scale), for instance i, size s, pretraining seed p, finetuning seed f, checkpoint e::

    z[i, 0]   ~ N(base_logit, difficulty_sd^2)                  instance difficulty
    z[i, s]   = z[i, s-1] + step[s] + step_sd * eta[i, s]        eta AR(1) across steps with coefficient `momentum`
    c[i,s,p,f,e] ~ Bernoulli(sigmoid(z[i,s] + a[s,p] + u[i,s,p] + h[i,s,f] + v[i,s,p,f] + w[i,s,p,f,e]))

``a`` is a pretraining-seed effect shared by all instances, ``u`` an instance-specific pretraining effect,
``h`` a finetuning-seed effect shared by every pretrained model of the size (crossed finetuning seeds: run f of
every pretrained model shares its head, data order and dropout; 0 by default, the nested design), ``v`` the
finetuning effect, ``w`` the checkpoint effect (all centred normal). Ground truth (expected accuracy and the
variance components) is computed by Gauss-Hermite quadrature over these effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from ._validate import SeedLike, check_rng

_NODES = 24
_TRUTH_CHUNK = 1000


def _expect(f_values: np.ndarray) -> np.ndarray:
    """E over a standard normal of values tabulated at the quadrature nodes on the last axis."""
    _, weights = hermegauss(_NODES)
    return f_values @ (weights / weights.sum())


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(z / 2))


@dataclass(frozen=True)
class SimulatedLadder:
    """Correctness tensors per size plus their ground truth.

    ``scores[name]`` is ``(n_instances, n_pretrain, n_finetune[, n_checkpoints])`` 0/1 correctness;
    ``true_accuracy[:, s]`` the expected accuracy :math:`\\mathrm{Acc}^s_i = \\mathbb{E}_{P,F,E}[c]`;
    ``true_components[name]`` the per-instance Bias2, PretVar, FineVar (and CkptVar).
    """

    sizes: tuple[str, ...]
    scores: dict[str, np.ndarray] = field(repr=False)
    true_accuracy: np.ndarray = field(repr=False)
    true_components: dict[str, dict[str, np.ndarray]] = field(repr=False)

    def true_decay(self, smaller: str, larger: str) -> float:
        """Fraction of instances whose expected accuracy is lower at ``larger`` than at ``smaller``."""
        s, l_ = self.sizes.index(smaller), self.sizes.index(larger)
        return float((self.true_accuracy[:, l_] < self.true_accuracy[:, s]).mean())

    def true_improve(self, smaller: str, larger: str) -> float:
        s, l_ = self.sizes.index(smaller), self.sizes.index(larger)
        return float((self.true_accuracy[:, l_] > self.true_accuracy[:, s]).mean())

    def true_momentum(self, smaller: str, middle: str, larger: str) -> float:
        """Pearson correlation over instances of the true successive accuracy differences."""
        s, m, l_ = (self.sizes.index(k) for k in (smaller, middle, larger))
        acc = self.true_accuracy
        return float(np.corrcoef(acc[:, m] - acc[:, s], acc[:, l_] - acc[:, m])[0, 1])


def _truth(z: np.ndarray, sd_pretrain: float, sd_finetune: float, sd_ckpt: float, with_ckpt: bool,
           sd_shared: float = 0.0) -> dict[str, np.ndarray]:
    """Per-instance ground truth for logits ``z`` (N,) under normal seed effects (``sd_finetune`` all finetuning
    noise, ``sd_shared`` of it the part shared across pretrained models)."""
    nodes, _ = hermegauss(_NODES)
    # g2[i, u, v] = E_w sigmoid(z + u + v + w); g1[i, u] = E_v g2.
    zu = z[:, None] + sd_pretrain * nodes[None, :]  # (N, U)
    zuv = zu[:, :, None] + sd_finetune * nodes[None, None, :]  # (N, U, V)
    if with_ckpt:
        g2 = _expect(_sigmoid(zuv[..., None] + sd_ckpt * nodes))
    else:
        g2 = _sigmoid(zuv)
    g1 = _expect(g2)
    acc = _expect(g1)
    parts = {
        "bias2": (1 - acc) ** 2,
        "pretrain_var": _expect(g1**2) - acc**2,
    }
    if with_ckpt:
        parts["finetune_var"] = _expect(_expect(g2**2) - g1**2)
        parts["checkpoint_var"] = _expect(_expect(g2 * (1 - g2)))
    else:
        parts["finetune_var"] = _expect(g1 - g1**2)  # Var of a Bernoulli with marginal prob g1(u)
    # The shared finetuning effect's variance: Var_h E_{u,v,w} sigmoid(z + h + everything else).
    rest = np.sqrt(max(sd_pretrain**2 + sd_finetune**2 - sd_shared**2 + (sd_ckpt**2 if with_ckpt else 0.0), 0.0))
    zh = z[:, None] + sd_shared * nodes[None, :]
    g = _expect(_sigmoid(zh[..., None] + rest * nodes))
    parts["finetune_shared_var"] = _expect(g**2) - _expect(g) ** 2
    return {"accuracy": acc, **parts}


def simulate(
    n_instances: int = 5000,
    sizes: tuple[str, ...] | int = ("mini", "small", "medium", "base", "large"),
    n_pretrain: int = 10,
    n_finetune: int = 5,
    n_checkpoints: int | None = None,
    *,
    base_logit: float = 1.5,
    difficulty_sd: float = 2.0,
    step: float = 0.4,
    step_sd: float = 0.6,
    momentum: float = 0.3,
    pretrain_shared_sd: float = 0.1,
    pretrain_sd: float = 0.4,
    finetune_sd: float = 0.8,
    finetune_shared_sd: float = 0.0,
    checkpoint_sd: float = 0.3,
    seed: SeedLike = 0,
    noise_seed: SeedLike | None = None,
) -> SimulatedLadder:
    """Simulate 0/1 correctness for a ladder of sizes with known ground truth (see the module docstring).

    ``step`` is the mean logit gain per size step and ``step_sd`` its instance-level spread: instances whose
    cumulative gain is negative truly decay. ``momentum`` is the AR(1) correlation of an instance's successive
    logit gains. With ``step=0, step_sd=0`` all sizes share the same truth (no instance truly decays).
    ``pretrain_sd`` is the instance-specific pretraining-seed effect, ``pretrain_shared_sd`` the part shared by
    all instances of a seed; ``finetune_sd`` and ``checkpoint_sd`` likewise (logit scale); ``finetune_shared_sd``
    a finetuning-seed effect shared by every pretrained model of a size (crossed finetuning seeds).
    ``seed`` draws the instances (the ground truth); ``noise_seed``, when given, draws the seed effects and
    correctness separately, so repeated simulations can share one ground truth.

    Examples
    --------
    >>> sim = simulate(n_instances=100, sizes=("a", "b"), n_pretrain=2, n_finetune=2, seed=1)
    >>> sim.scores["a"].shape, sim.true_accuracy.shape
    ((100, 2, 2), (100, 2))
    """
    rng = check_rng(seed)
    noise = rng if noise_seed is None else check_rng(noise_seed)
    names = tuple(f"size{k}" for k in range(sizes)) if isinstance(sizes, int) else tuple(sizes)
    if len(names) < 1 or n_instances < 1 or n_pretrain < 1 or n_finetune < 1:
        raise ValueError("simulate: need >= 1 size, instance, pretraining seed and finetuning seed")
    if not -1 < momentum < 1:
        raise ValueError(f"momentum: expected a correlation in (-1, 1), found {momentum}")
    with_ckpt = n_checkpoints is not None
    shape = (n_instances, n_pretrain, n_finetune) + ((n_checkpoints,) if with_ckpt else ())

    z = rng.normal(base_logit, difficulty_sd, n_instances)
    eta = rng.normal(size=n_instances)
    scores, accuracy, components = {}, [], {}
    # The instance-specific pretraining effect u and the shared effect a are both pretraining-level noise.
    sd_pretrain = float(np.hypot(pretrain_sd, pretrain_shared_sd))
    sd_finetune = float(np.hypot(finetune_sd, finetune_shared_sd))
    for k, name in enumerate(names):
        if k > 0:
            eta = momentum * eta + np.sqrt(1 - momentum**2) * rng.normal(size=n_instances)
            z = z + step + step_sd * eta
        chunks = [_truth(z[i : i + _TRUTH_CHUNK], sd_pretrain, sd_finetune, checkpoint_sd, with_ckpt, finetune_shared_sd)
                  for i in range(0, n_instances, _TRUTH_CHUNK)]  # bounded memory for the quadrature grid
        truth = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        accuracy.append(truth.pop("accuracy"))
        components[name] = truth

        logit = np.broadcast_to(z.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
        logit += noise.normal(0, pretrain_shared_sd, n_pretrain).reshape((1, -1) + (1,) * (len(shape) - 2))
        logit += noise.normal(0, pretrain_sd, shape[:2]).reshape(shape[:2] + (1,) * (len(shape) - 2))
        logit += noise.normal(0, finetune_sd, shape[:3]).reshape(shape[:3] + (1,) * (len(shape) - 3))
        if finetune_shared_sd:
            shared = noise.normal(0, finetune_shared_sd, (n_instances, 1, n_finetune))
            logit += shared.reshape(shared.shape + (1,) * (len(shape) - 3))
        if with_ckpt:
            logit += noise.normal(0, checkpoint_sd, shape)
        scores[name] = (noise.random(shape) < _sigmoid(logit)).astype(np.float64)
    return SimulatedLadder(names, scores, np.stack(accuracy, axis=1), components)
