"""Loss decomposition into squared bias, pretraining, finetuning and checkpoint variance (Theorem 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._validate import as_scores

Estimator = Literal["unbiased", "plugin"]
SeedDesign = Literal["crossed", "nested"]


@dataclass(frozen=True)
class Decomposition:
    """Mean (over instances) loss and its components; per-instance values in ``instance_values``.

    ``loss = bias2 + pretrain_var + finetune_var (+ checkpoint_var)`` holds exactly, per instance.
    ``checkpoint_var`` is ``None`` for 3-D input. ``finetune_shared_var`` (``seed_design="crossed"`` only) is the
    part of ``finetune_var`` that a finetuning seed shares across pretrained models (run f of every pretrained
    model): 0 in expectation when finetuning seeds are nested. ``instance_values`` maps ``loss`` and each component
    to its per-instance array; ``per_instance`` (or :meth:`to_frame`) is the same as a pandas DataFrame.
    """

    loss: float
    bias2: float
    pretrain_var: float
    finetune_var: float
    checkpoint_var: float | None
    estimator: Estimator
    seed_design: str = "crossed"
    finetune_shared_var: float | None = None
    instance_values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

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
            "finetune_shared_var": self.finetune_shared_var,
            "estimator": self.estimator,
            "seed_design": self.seed_design,
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


def two_way_components(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Unbiased variance components of a two-way random-effects layout ``y`` (N, P, F), per instance:
    :math:`y_{pf} = \mu + \alpha_p + \beta_f + \varepsilon_{pf}` with pretraining effects :math:`\alpha`, finetuning
    effects :math:`\beta` shared by every pretrained model, and a residual :math:`\varepsilon` (their interaction and
    anything else run-specific). From the mean squares,
    :math:`\hat\sigma^2_\alpha = (MS_P - MS_E)/F`, :math:`\hat\sigma^2_\beta = (MS_F - MS_E)/P` and
    :math:`\hat\sigma^2_\varepsilon = MS_E`. With nested finetuning seeds (nothing shared) :math:`\sigma^2_\beta = 0`
    and the estimates stay unbiased."""
    _, n_p, n_f = y.shape
    rows, cols, grand = y.mean(axis=2), y.mean(axis=1), y.mean(axis=(1, 2))
    ms_p = n_f * ((rows - grand[:, None]) ** 2).sum(axis=1) / (n_p - 1)
    ms_f = n_p * ((cols - grand[:, None]) ** 2).sum(axis=1) / (n_f - 1)
    residual = y - rows[:, :, None] - cols[:, None, :] + grand[:, None, None]
    ms_e = (residual**2).sum(axis=(1, 2)) / ((n_p - 1) * (n_f - 1))
    return (ms_p - ms_e) / n_f, (ms_f - ms_e) / n_p, ms_e


def decompose(x: object, estimator: Estimator = "unbiased", seed_design: SeedDesign = "crossed") -> Decomposition:
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
        values in [0, 1]; every axis after the first needs >= 2 entries for the unbiased estimators.
    estimator
        ``"unbiased"`` (default) or ``"plugin"``: population variances of the empirical distribution and
        ``Bias2 = (1 - c_bar)^2`` (biased: PretVar up, FineVar down), for comparison.
    seed_design
        For ``"unbiased"``: ``"crossed"`` (default; unbiased whether finetuning seeds are crossed with pretraining
        seeds or nested in them) treats the run means :math:`y_{pf} = \mathbb{E}_E c` as a two-way layout
        (:func:`two_way_components`): ``PretVar`` = :math:`\hat\sigma^2_\alpha`, ``FineVar`` =
        :math:`\hat\sigma^2_\beta + \hat\sigma^2_\varepsilon - \widehat{\mathrm{CkptVar}}/E` (a finetuning seed's effect
        shared across pretrained models, ``finetune_shared_var``, plus its interaction with the pretrained model),
        ``CkptVar`` the mean within-run sample variance over checkpoints. ``"nested"`` (runs of different
        pretrained models share nothing): Theorem 2 applied recursively, lower variance when the design is nested;
        with crossed seeds its PretVar is biased by :math:`-\sigma^2_\beta / F` (it can turn negative).

    Returns
    -------
    Decomposition

    Notes
    -----
    Nested estimators (appendix H, last checkpoint), with ``c_jk`` for pretraining seed j in [P] and finetuning
    seed k in [F]: ``c_bar_j = mean_k c_jk``, ``s2_j = var_k(c_jk, ddof=1)``, ``FineVar = mean_j s2_j``,
    ``PretVar = var_j(c_bar_j, ddof=1) - mean_j s2_j / F``. With checkpoints the same rule is applied one level
    deeper. In both designs ``Bias2`` is the loss minus the variance components, which equals the unbiased
    :math:`(1 - \bar c)^2 - \widehat{\mathrm{Var}}(\bar c)` (crossed: :math:`\widehat{\mathrm{Var}}(\bar y) = (MS_P +
    MS_F - MS_E)/(PF)`), so ``loss = sum of components`` holds exactly per instance.

    References
    ----------
    Zhong, Ghosh, Klein & Steinhardt (2021), Sec. 6 and App. H (Theorem 2); two-way random-effects ANOVA (e.g.
    Searle, Casella & McCulloch, Variance Components, 1992, ch. 4).

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
    if seed_design not in ("crossed", "nested"):
        raise ValueError(f"seed_design: expected 'crossed' or 'nested', found {seed_design!r}")
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

    shared = None
    if unbiased and seed_design == "crossed":
        pretrain_var, shared, residual = two_way_components(run_means)
        finetune_var = shared + residual - (checkpoint_var / x.shape[3] if has_ckpt else 0.0)
    else:
        n_finetune = run_means.shape[2]
        seed_means = run_means.mean(axis=2)  # (N, P)
        finetune_var = _group_variance(run_means, run_mean_var, unbiased).mean(axis=1)
        # Var_hat of a seed mean = sample variance of its run means / F (unbiased for the full within-seed noise).
        seed_mean_var = run_means.var(axis=2, ddof=1) / n_finetune if unbiased else None
        pretrain_var = _group_variance(seed_means, seed_mean_var, unbiased)

    parts = {"pretrain_var": pretrain_var, "finetune_var": finetune_var}
    if has_ckpt:
        parts["checkpoint_var"] = checkpoint_var
    if unbiased:
        bias2 = loss - np.sum(list(parts.values()), axis=0)  # = (1 - c_bar)^2 - Var_hat(c_bar), see Notes
    else:
        bias2 = (1.0 - run_means.mean(axis=(1, 2))) ** 2
        total = bias2 + np.sum(list(parts.values()), axis=0)
        if not np.allclose(total, loss, rtol=0, atol=1e-9):
            worst = int(np.argmax(np.abs(total - loss)))
            raise AssertionError(f"decomposition invariant broken at instance {worst}: loss {loss[worst]} != sum "
                                 f"{total[worst]}")
    values = {"loss": loss, "bias2": bias2, **parts}
    if shared is not None:
        values["finetune_shared_var"] = shared
    means = {k: float(v.mean()) for k, v in values.items()}
    return Decomposition(
        loss=means["loss"],
        bias2=means["bias2"],
        pretrain_var=means["pretrain_var"],
        finetune_var=means["finetune_var"],
        checkpoint_var=means["checkpoint_var"] if has_ckpt else None,
        estimator=estimator,
        seed_design=seed_design if unbiased else "nested",
        finetune_shared_var=means.get("finetune_shared_var"),
        instance_values=values,
    )
