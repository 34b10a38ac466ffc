"""Ensembles of the finetuning runs of each pretrained model: independent units for rigorous bounds."""

from __future__ import annotations

import numpy as np


def ensemble_by_pretrain(probs: object, labels: object) -> np.ndarray:
    """0/1 correctness of each pretrained model's finetuning ensemble, shape ``(n_instances, n_pretrain)``.

    For pretraining seed p the class probabilities of its finetuning runs are averaged and the argmax is
    compared with the gold label (App. D.1). Runs that share a pretraining seed are dependent, so Theorem 1
    is only rigorous for one value per pretraining seed; pass the result to :func:`decay_bounds` or
    :func:`bh_decay_bound` as 2-D independent units.

    Parameters
    ----------
    probs
        ``(n_instances, n_pretrain, n_finetune, n_classes)`` class probabilities of one checkpoint.
    labels
        ``(n_instances,)`` gold label indices in ``[0, n_classes)``.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[[0.6, 0.4], [0.3, 0.7]]]])   # 1 instance, 1 pretraining x 2 finetuning seeds
    >>> ensemble_by_pretrain(p, [1])                  # mean (0.45, 0.55) -> class 1, correct
    array([[1.]])
    """
    try:
        p = np.asarray(probs, dtype=np.float64)
        y = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"probs/labels: expected numeric arrays ({exc})") from None
    if p.ndim != 4:
        raise ValueError(
            f"probs: expected shape (n_instances, n_pretrain, n_finetune, n_classes), found {p.ndim}-D shape {p.shape}"
        )
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("probs: expected finite probabilities in [0, 1]")
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels: expected shape ({p.shape[0]},) to match probs, found {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[3]:
        raise ValueError(f"labels: expected integer class indices in [0, {p.shape[3]}), found {y[:5]}...")
    predicted = p.mean(axis=2).argmax(axis=2)  # (N, P)
    return (predicted == y[:, None]).astype(np.float64)
