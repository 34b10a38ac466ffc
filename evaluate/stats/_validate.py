"""Input validation shared by every estimator: one place that turns user input into canonical arrays.

Every public function in :mod:`instdecay.evaluate` calls these first, so a user mistake becomes one
``ValueError`` that names the argument, what was expected and what was found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SeedLike = int | np.random.Generator | None

# Values are rounded to this many decimals before they are compared with thresholds, so that
# the same lattice value computed by two summation orders compares equal.
_DECIMALS = 10


def check_rng(seed: SeedLike) -> np.random.Generator:
    """Return a ``np.random.Generator`` from an int, ``None`` or an existing generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise ValueError(f"seed: expected an int, None or numpy.random.Generator, found {type(seed).__name__}")


def as_scores(
    x: object,
    name: str = "x",
    ndims: tuple[int, ...] = (2, 3, 4),
    binary: bool = False,
) -> np.ndarray:
    """Check ``x`` and return it as a float64 array of per-run scores in [0, 1].

    Parameters
    ----------
    x
        Array-like of shape ``(n_instances, n_units)``, ``(n_instances, n_pretrain, n_finetune)`` or
        ``(n_instances, n_pretrain, n_finetune, n_checkpoints)``.
    name
        Argument name used in error messages.
    ndims
        Accepted numbers of dimensions.
    binary
        Require 0/1 correctness (not probabilities).
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric array, could not convert ({exc})") from None
    if arr.ndim not in ndims:
        shapes = {
            2: "(n_instances, n_units)",
            3: "(n_instances, n_pretrain, n_finetune)",
            4: "(n_instances, n_pretrain, n_finetune, n_checkpoints)",
        }
        allowed = " or ".join(shapes[d] for d in ndims)
        raise ValueError(f"{name}: expected shape {allowed}, found {arr.ndim}-D array of shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name}: found an empty axis (shape={arr.shape}); every axis needs at least 1 entry")
    if np.isnan(arr).any():
        n_nan = int(np.isnan(arr).sum())
        raise ValueError(f"{name}: found {n_nan} NaN value(s); every run must score every instance")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: values must lie in [0, 1] (correctness or gold-label probability), found range [{lo}, {hi}]")
    if binary and not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name}: expected 0/1 correctness, found values strictly between 0 and 1")
    return arr


def check_same_instances(**arrays: np.ndarray) -> int:
    """Check that every array has the same number of instances (axis 0); return that number."""
    counts = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(counts.values())) > 1:
        found = ", ".join(f"{name} has {n}" for name, n in counts.items())
        raise ValueError(f"all inputs must score the same instances in the same order; found {found} instances")
    return next(iter(counts.values()))


def last_checkpoint(x: np.ndarray) -> np.ndarray:
    """Drop the checkpoint axis of 4-D input by keeping the last checkpoint (the paper's main analyses)."""
    return x[..., -1] if x.ndim == 4 else x


@dataclass(frozen=True)
class Units:
    """Scores grouped into independent units: ``values[i, u, r]`` is run ``r`` of unit ``u``.

    A unit is what the random baseline splits into halves: a pretraining seed (its finetuning runs are
    the runs), or one finetuning run when there is a single pretraining seed, or one column of
    2-D input (an ensemble or any independent run).
    """

    values: np.ndarray
    noise: str
    unit_name: str

    @property
    def n_units(self) -> int:
        return self.values.shape[1]

    @property
    def binary(self) -> bool:
        return bool(np.isin(self.values, (0.0, 1.0)).all())

    def unit_means(self) -> np.ndarray:
        """Per-unit mean score, shape ``(n_instances, n_units)``."""
        return self.values.mean(axis=2)


def as_units(x: np.ndarray, name: str) -> Units:
    """Group a validated 2-D/3-D/4-D array into independent units (4-D: last checkpoint)."""
    x = last_checkpoint(x)
    if x.ndim == 2:
        return Units(x[:, :, None], noise="independent units (columns of 2-D input)", unit_name="unit")
    n_pretrain, n_finetune = x.shape[1], x.shape[2]
    if n_pretrain >= 2:
        return Units(x, noise="pretraining and finetuning seeds", unit_name="pretraining seed")
    if n_finetune >= 2:
        return Units(
            x[:, 0, :, None],
            noise="finetuning seeds only (one pretraining seed: the bound is about this pretrained checkpoint)",
            unit_name="finetuning run",
        )
    raise ValueError(f"{name}: needs at least 2 runs (pretraining or finetuning seeds), found shape {x.shape}")


def rounded(values: np.ndarray) -> np.ndarray:
    """Round to a fixed number of decimals so lattice values compare exactly."""
    return np.round(values, _DECIMALS)
