"""How often two runs of one size disagree on an instance, within and across pretraining seeds."""

from __future__ import annotations

from dataclasses import dataclass


from ._validate import as_scores, last_checkpoint


@dataclass(frozen=True)
class SeedDisagreement:
    """Mean fraction of instances on which two runs differ in correctness.

    ``within_pretrain``: pairs of runs sharing a pretraining seed (different finetuning seeds);
    ``across_pretrain``: pairs with different pretraining seeds; ``accuracy_std``: standard deviation
    (ddof=1) of the overall accuracy of the individual runs, for contrast with the instance-level churn.
    """

    within_pretrain: float
    across_pretrain: float
    accuracy_std: float
    n_pretrain: int
    n_finetune: int


def seed_disagreement(x: object) -> SeedDisagreement:
    r"""Fraction of instances on which two runs of the same size disagree (Zhong et al. 2021, Sec. 1, 3).

    .. math::
        \text{within} = \operatorname{mean}_{p,\ f<f'} \tfrac{1}{|T|}\sum_i |c_{ipf} - c_{ipf'}|,\qquad
        \text{across} = \operatorname{mean}_{p<p',\ f,f'} \tfrac{1}{|T|}\sum_i |c_{ipf} - c_{ip'f'}|

    Computed in closed form from correct counts: with :math:`k_{ip}` correct runs out of F, the number of
    disagreeing pairs within seed p is :math:`k_{ip}(F-k_{ip})`, and over all runs :math:`K_i(PF-K_i)`.
    Correctness is compared, so two different wrong labels count as agreement.

    Parameters
    ----------
    x
        0/1 correctness ``(n_instances, n_pretrain, n_finetune[, n_checkpoints])``; 4-D uses the last checkpoint.
        ``within`` needs F >= 2 and ``across`` needs P >= 2 (otherwise NaN).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1, 0], [1, 1]], [[1, 1], [1, 1]]])   # 2 instances, 2 x 2 seeds
    >>> r = seed_disagreement(x)
    >>> r.within_pretrain, r.across_pretrain
    (0.25, 0.25)
    """
    x = last_checkpoint(as_scores(x, ndims=(3, 4), binary=True))
    _, n_pretrain, n_finetune = x.shape
    correct_per_seed = x.sum(axis=2)  # k_ip
    within_pairs = correct_per_seed * (n_finetune - correct_per_seed)  # disagreeing pairs inside seed p
    total_correct = correct_per_seed.sum(axis=1)
    all_pairs = total_correct * (n_pretrain * n_finetune - total_correct)
    across_pairs = all_pairs - within_pairs.sum(axis=1)

    n_within = n_pretrain * n_finetune * (n_finetune - 1) / 2
    n_across = n_finetune**2 * n_pretrain * (n_pretrain - 1) / 2
    within = float(within_pairs.sum(axis=1).mean() / n_within) if n_within else float("nan")
    across = float(across_pairs.mean() / n_across) if n_across else float("nan")
    run_accuracy = x.mean(axis=0).ravel()
    accuracy_std = float(run_accuracy.std(ddof=1)) if run_accuracy.size > 1 else float("nan")
    return SeedDisagreement(within, across, accuracy_std, n_pretrain, n_finetune)
