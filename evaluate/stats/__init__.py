"""Noise-corrected instance-level statistics on arrays: numpy and scipy only (no files, pandas or plotting
libraries; matplotlib is imported only inside ``plot()`` methods, pandas only by ``to_frame()``).

Input convention: one model size's predictions on a fixed list of instances form an array of shape
``(n_instances, n_pretrain, n_finetune)`` or ``(n_instances, n_pretrain, n_finetune, n_checkpoints)`` whose
entries are 0/1 correctness or the probability given to the gold label; a 2-D array
``(n_instances, n_units)`` holds independent units (e.g. :func:`ensemble_by_pretrain`).
"""

from .bh import BHDecayBound, bh_decay_bound
from .decay import DecayBounds, decay_bounds
from .decomposition import Decomposition, decompose
from .disagreement import SeedDisagreement, seed_disagreement
from .ensemble import ensemble_by_pretrain
from .momentum import Momentum, momentum
from .paired import McNemarResult, PairedComparison, adjust_pvalues, mcnemar_test, paired_bootstrap
from .simulate import SimulatedLadder, simulate

__all__ = [
    "BHDecayBound",
    "DecayBounds",
    "Decomposition",
    "McNemarResult",
    "Momentum",
    "PairedComparison",
    "SeedDisagreement",
    "SimulatedLadder",
    "adjust_pvalues",
    "bh_decay_bound",
    "decay_bounds",
    "decompose",
    "ensemble_by_pretrain",
    "mcnemar_test",
    "momentum",
    "paired_bootstrap",
    "seed_disagreement",
    "simulate",
]
