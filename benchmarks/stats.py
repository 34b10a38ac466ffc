"""Benchmark the statistics engine at MNLI scale and print each figure.

60,000 instances, 5 sizes, 10 pretraining x 5 finetuning seeds, 4 checkpoints (simulated 0/1 correctness).
Times: all decompositions, all 10 pairwise decay bounds (paper estimate), momentum for all triples (naive +
corrected), the decay/improve LCBs with 1,000 resamples for one pair (all runs, and one run per seed), the paired
t interval for all pairs and the multi-bootstrap for one; each also as a ratio to one plain numpy pass (a mean
over every value of the ladder). Peak memory is the process's max RSS.

    python benchmarks/stats.py [--instances 60000]
"""

from __future__ import annotations

import argparse
import resource
import time
from itertools import combinations

import numpy as np

from instdecay.evaluate import decay_bounds, decompose, momentum, paired_bootstrap, simulate


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=60_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    sim = simulate(args.instances, n_pretrain=10, n_finetune=5, n_checkpoints=4, seed=0)
    ladder = {k: v.astype(np.float32) for k, v in sim.scores.items()}  # what a loader hands over
    print(f"simulated {len(ladder)} sizes x {ladder['mini'].shape} in {time.perf_counter() - t0:.1f} s")
    sizes = list(ladder)
    last = {k: v[..., -1] for k, v in ladder.items()}

    numpy_pass = min(timed(lambda: [x.mean(axis=(1, 2, 3)) for x in ladder.values()]) for _ in range(3))
    figures = {
        "5 decompositions (unbiased, 4-D)": timed(lambda: [decompose(x) for x in ladder.values()]),
        "10 pairwise decay bounds (paper estimate)": timed(
            lambda: [decay_bounds(last[a], last[b], n_boot=0) for a, b in combinations(sizes, 2)]),
        "10 momentum triples (naive + corrected)": timed(
            lambda: [momentum(last[a], last[b], last[c], noise_correction=nc)
                     for a, b, c in combinations(sizes, 3) for nc in (False, True)]),
        "decay/improve LCBs, 1,000 resamples, one pair": timed(
            lambda: decay_bounds(last["mini"], last["large"], n_boot=1000, seed=0)),
        "rigorous LCBs (1 run per seed), 1,000 resamples": timed(
            lambda: decay_bounds(last["mini"], last["large"], n_boot=1000, runs_per_unit=1, seed=0)),
        "paired t interval, 10 pairs": timed(
            lambda: [paired_bootstrap(last[a], last[b]) for a, b in combinations(sizes, 2)]),
        "paired multi-bootstrap, 1,000 resamples, one pair": timed(
            lambda: paired_bootstrap(last["mini"], last["large"], interval="percentile", n_boot=1000)),
    }
    print(f"plain numpy pass over all {sum(x.size for x in ladder.values()):,} values: {numpy_pass:.3f} s")
    for name, seconds in figures.items():
        print(f"{name:<50} {seconds:7.2f} s  ({seconds / numpy_pass:7.1f} x numpy pass)")
    print(f"{'whole report':<50} {sum(figures.values()):7.2f} s")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
