"""Where every run's randomness comes from.

A finetuning run has three random streams: classifier-head initialisation, data order and dropout. In the
``nested`` seed design (the default) each stream's seed derives from (size, pretraining seed, finetuning seed), so
every run is independent of every other; in the ``crossed`` design it derives from the finetuning seed alone, so
run f of every pretrained model (and of every size) shares its head, data order and dropout: a two-way layout
(pretraining x finetuning seeds) that the statistics must treat as such. A pretraining run's randomness derives
from (size, pretraining seed).
"""

from __future__ import annotations

import hashlib

import numpy as np

STREAMS = {"head": 1, "order": 2, "dropout": 3}
DESIGNS = ("nested", "crossed")


def _seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def size_key(size: str) -> int:
    """A stable integer for a size name, so that runs of different sizes get different randomness."""
    return int.from_bytes(hashlib.sha256(size.encode()).digest()[:4], "little")


def run_seeds(design: str, size: str, pretrain_seed: int, finetune_seed: int) -> dict[str, int]:
    """The seed of each random stream of one finetuning run under the seed ``design``."""
    if design not in DESIGNS:
        raise ValueError(f"seed design: expected one of {DESIGNS}, found {design!r}")
    if design == "crossed":
        return {name: _seed(finetune_seed, k) for name, k in STREAMS.items()}
    return {name: _seed(size_key(size), pretrain_seed, finetune_seed, k) for name, k in STREAMS.items()}


def pretraining_seed(size: str, seed: int) -> int:
    """The seed of one pretraining run (initialisation, batches and masks): pretraining seed p of two sizes draws
    differently."""
    return _seed(size_key(size), seed)
