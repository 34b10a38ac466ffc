"""Loss decomposition into squared bias, pretraining, finetuning and checkpoint variance (Theorem 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._validate import as_scores

Estimator = Literal["unbiased", "plugin"]

_COMPONENTS = ("bias2", "pretrain_var", "finetune_var", "checkpoint_var")


@dataclass(frozen=True)
class Decomposition:
    """Mean (over instances) loss and its components; per-instance values in ``per_instance``.

    ``loss = bias2 + pretrain_var + finetune_var (+ checkpoint_var)`` holds exactly, per instance.
    ``checkpoint_var`` is ``None`` for 3-D input. ``instance_values`` maps ``loss`` and each component to its
    per-instance array; ``per_instance`` (or :meth:`to_frame`) is the same as a pandas DataFrame.
    """

    loss: float
    bias2: float
    pretrain_var: float
    finetune_var: float
    checkpoint_var: float | None
    estimator: Estimator
    instance_values: dict[str, np.ndarray] = field(repr=False)

    def to_frame(self):
        """Per-instance values as a pandas DataFrame (one column per entry of ``instance_values``)."""
        import pandas as pd

        return pd.DataFrame(self.instance_values)

    @property
    def per_instance(self):
        return self.to_frame()

    def to_dict(self) -> dict[str, float | None | str]:
        return {
            "loss": self.loss,
            "bias2": self.bias2,
            "pretrain_var": self.pretrain_var,
            "finetune_var": self.finetune_var,
            "checkpoint_var": self.checkpoint_var,
            "estimator": self.estimator,
        }


def _group_variance(means: np.ndarray, mean_var: np.ndarray | None, unbiased: bool) -> np.ndarray:
    """Variance over axis -1 of group means, Theorem 2-corrected when ``unbiased``.

    Theorem 2: ``Var_hat = 1/(K-1) sum_k (mu_k - mu)^2 - 1/K sum_k sigma2_k`` where ``sigma2_k``
    (``mean_var``) is an unbiased estimate of the variance of the noisy group mean ``mu_k``.
    """
    if not unbiased:
        return means.var(axis=-1)
    corrected = means.var(axis=-1, ddof=1)
    if mean_var is not None:
        corrected = corrected - mean_var.mean(axis=-1)
    return corrected


def decompose(x: object, estimator: Estimator = "unbiased") -> Decomposition:
    r"""Decompose the expected squared loss of each instance across the randomness of a training recipe.

    Estimates, for every instance :math:`i` and then averaged over instances,

    .. math::
        \mathbb{E}_{P,F,E}[(1-c)^2] = \mathrm{Bias}^2 + \mathrm{PretVar} + \mathrm{FineVar} + \mathrm{CkptVar}

    with :math:`\mathrm{Bias}^2 = (1 - \mathbb{E}_{P,F,E}[c])^2`, :math:`\mathrm{PretVar} = \mathrm{Var}_P[\mathbb{E}_{F,E} c]`,
    :math:`\mathrm{FineVar} = \mathbb{E}_P[\mathrm{Var}_F[\mathbb{E}_E c]]` and
    :math:`\mathrm{CkptVar} = \mathbb{E}_{P,F}[\mathrm{Var}_E c]` (Zhong et al. 2021, eqs. 34-38). ``c`` is 0/1
    correctness (0/1 loss) or the gold-label probability (squared loss).

    Parameters
    ----------
    x
        ``(n_instances, n_pretrain, n_finetune)`` or ``(n_instances, n_pretrain, n_finetune, n_checkpoints)``,
        values in [0, 1]; every axis after the first needs >= 2 entries for the unbiased estimator.
    estimator
        ``"unbiased"`` (default): Theorem 2 applied recursively. Each variance is the sample variance (ddof=1)
        of the group means minus the mean estimated variance of those means, so it is unbiased for the
        variance of the *expected* group means; it corrects the upward bias that finetuning (and checkpoint)
        noise adds to the spread of per-seed means. ``Bias2 = (1 - c_bar)^2 - Var_hat(c_bar)`` with
        ``Var_hat(c_bar)`` the unbiased variance of the grand mean. Per-instance values can be negative;
        the means are unbiased. ``"plugin"``: population variances of the empirical distribution and
        ``Bias2 = (1 - c_bar)^2`` (biased: PretVar up, FineVar down), for comparison.

    Returns
    -------
    Decomposition

    Notes
    -----
    Three-source estimators (appendix H, last checkpoint), with ``c_jk`` for pretraining seed j in [P] and
    finetuning seed k in [F]: ``c_bar_j = mean_k c_jk``, ``s2_j = var_k(c_jk, ddof=1)``,
    ``FineVar = mean_j s2_j``, ``PretVar = var_j(c_bar_j, ddof=1) - mean_j s2_j / F``,
    ``Bias2 = (1 - c_bar)^2 - var_j(c_bar_j, ddof=1) / P``. With checkpoints the same rule is applied one
    level deeper. The identity ``loss = sum of components`` is checked per instance.

    References
    ----------
    Zhong, Ghosh, Klein & Steinhardt (2021), Sec. 6 and App. H (Theorem 2).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[[1, 1], [0, 1]]])          # one instance, 2 pretraining x 2 finetuning seeds
    >>> d = decompose(c)
    >>> round(d.loss, 4), round(d.finetune_var, 4), round(d.pretrain_var, 4), round(d.bias2, 4)
    (0.25, 0.25, 0.0, 0.0)
    """
    if estimator not in ("unbiased", "plugin"):
        raise ValueError(f"estimator: expected 'unbiased' or 'plugin', found {estimator!r}")
    x = as_scores(x, ndims=(3, 4))
    unbiased = estimator == "unbiased"
    if unbiased and min(x.shape[1:]) < 2:
        raise ValueError(
            f"x: the unbiased decomposition needs >= 2 entries on every seed/checkpoint axis, found shape {x.shape}"
        )
    has_ckpt = x.ndim == 4
    ddof = 1 if unbiased else 0

    loss = ((1.0 - x) ** 2).reshape(x.shape[0], -1).mean(axis=1)
    if has_ckpt:
        n_ckpt = x.shape[3]
        run_means = x.mean(axis=3)  # E_E c, shape (N, P, F)
        ckpt_var_of_run = x.var(axis=3, ddof=ddof)  # s2_jk over checkpoints
        checkpoint_var = ckpt_var_of_run.mean(axis=(1, 2))
        run_mean_var = ckpt_var_of_run / n_ckpt if unbiased else None  # Var_hat of each run's mean
    else:
        run_means, run_mean_var, checkpoint_var = x, None, None

    n_finetune = run_means.shape[2]
    seed_means = run_means.mean(axis=2)  # (N, P)
    finetune_var_of_seed = _group_variance(run_means, run_mean_var, unbiased)  # (N, P)
    finetune_var = finetune_var_of_seed.mean(axis=1)

    n_pretrain = seed_means.shape[1]
    # Var_hat of a seed mean = sample variance of its run means / F (unbiased for the full within-seed noise).
    seed_mean_var = run_means.var(axis=2, ddof=1) / n_finetune if unbiased else None
    pretrain_var = _group_variance(seed_means, seed_mean_var, unbiased)

    grand_mean = seed_means.mean(axis=1)
    bias2 = (1.0 - grand_mean) ** 2
    if unbiased:
        bias2 = bias2 - seed_means.var(axis=1, ddof=1) / n_pretrain

    parts = {"bias2": bias2, "pretrain_var": pretrain_var, "finetune_var": finetune_var}
    if has_ckpt:
        parts["checkpoint_var"] = checkpoint_var
    total = np.sum(list(parts.values()), axis=0)
    if not np.allclose(total, loss, rtol=0, atol=1e-9):
        worst = int(np.argmax(np.abs(total - loss)))
        raise AssertionError(f"decomposition invariant broken at instance {worst}: loss {loss[worst]} != sum {total[worst]}")

    values = {"loss": loss, **parts}
    means = {k: float(v.mean()) for k, v in values.items()}
    return Decomposition(
        loss=means["loss"],
        bias2=means["bias2"],
        pretrain_var=means["pretrain_var"],
        finetune_var=means["finetune_var"],
        checkpoint_var=means["checkpoint_var"] if has_ckpt else None,
        estimator=estimator,
        instance_values=values,
    )
