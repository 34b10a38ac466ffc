"""The nested bootstrap of the seed hierarchy, shared by the decay-bound LCB and the paired multi-bootstrap."""

from __future__ import annotations

import numpy as np


def nested_draws(n_units: int, n_rep: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Flat cell indices (n_boot, n_units, n_rep) of one nested bootstrap per replicate: units (pretraining
    seeds) are drawn with replacement and, within each drawn unit, its replicates (finetuning runs) too.
    Replicate b's indices are offset by ``b * n_units * n_rep`` so one ``bincount`` counts them all."""
    cells = n_units * n_rep
    units = rng.integers(0, n_units, size=(n_boot, n_units))
    reps = rng.integers(0, n_rep, size=(n_boot, n_units, n_rep))
    return units[:, :, None] * n_rep + reps + (np.arange(n_boot) * cells)[:, None, None]


def draw_weights(draws: np.ndarray, n_boot: int, cells: int) -> np.ndarray:
    """(n_boot, cells) weights averaging the drawn cells: counts divided by the number of draws per replicate."""
    per_replicate = draws[0].size
    return np.bincount(draws.ravel(), minlength=n_boot * cells).reshape(n_boot, cells) / per_replicate
