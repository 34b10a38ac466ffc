"""Decay bounds for many (smaller, larger) pairs, each with its rigorous variant, spread over threads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..stats._validate import SeedLike, check_rng
from ..stats.decay import DecayBounds, decay_bounds

Pair = tuple[np.ndarray, np.ndarray]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the platform reports it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def bounds_with_rigorous(smaller: np.ndarray, larger: np.ndarray, *, n_boot: int, confidence: float,
                         seed_design: str, seed: SeedLike) -> tuple[DecayBounds, DecayBounds | None]:
    """Bounds of ``larger`` against ``smaller`` on a matched design (all runs), and the rigorous LCBs on one 0/1
    run per pretraining seed (the same object when the first is already rigorous; ``None`` for probability
    scores, where no design is rigorous)."""
    rng = check_rng(seed)
    common = {"match": "subsample", "confidence": confidence, "n_boot": n_boot, "seed_design": seed_design}
    bounds = decay_bounds(smaller, larger, seed=rng, **common)
    if bounds.rigorous:
        return bounds, bounds
    if not all(np.isin(x, (0.0, 1.0)).all() for x in (smaller, larger)):
        return bounds, None
    return bounds, decay_bounds(smaller, larger, runs_per_unit=1, seed=rng, **common)


def pair_bounds(pairs: Sequence[Pair], *, n_boot: int, confidence: float = 0.95, seed_design: str = "crossed",
                seed: SeedLike = 0, workers: int | None = None, progress: bool = False,
                desc: str = "decay bounds") -> list[tuple[DecayBounds, DecayBounds | None]]:
    """:func:`bounds_with_rigorous` for every pair, in order. Each pair draws from its own stream spawned from
    ``seed``, so the results do not depend on ``workers`` (threads; default: the available CPUs). With several
    workers, BLAS runs one thread per worker (its own threads would compete with them)."""
    streams = check_rng(seed).spawn(len(pairs))
    workers = max(1, min(workers or available_cpus(), len(pairs)))

    def one(k: int) -> tuple[DecayBounds, DecayBounds | None]:
        return bounds_with_rigorous(*pairs[k], n_boot=n_boot, confidence=confidence, seed_design=seed_design,
                                    seed=streams[k])

    with threadpool_limits(limits=1 if workers > 1 else None, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(one, range(len(pairs))), total=len(pairs), desc=desc, disable=not progress))
