"""Benchmark `instdecay report` at MNLI scale and print each figure.

The ladder: 9,815 instances (MNLI validation_matched), 5 sizes, 10 pretraining x 5 finetuning seeds, 4 checkpoints
of simulated 0/1 correctness. Times the whole report (``analyze_ladder`` with 1,000 bootstrap replicates and 8
patterns, the numbers the coverage table uses, then ``write_report`` with its plots) on every available CPU and on
one thread, then its parts: the decompositions, one pair's decay/improve LCBs (all runs and rigorous), momentum and
the paired intervals. Peak memory is the process's max RSS. Run it on an otherwise idle machine.

    python benchmarks/stats.py [--instances 9815] [--n-boot 1000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from itertools import combinations

import numpy as np

from instdecay.evaluate import decay_bounds, decompose, momentum, paired_bootstrap, simulate
from instdecay.evaluate.reports.ladder import analyze_ladder
from instdecay.evaluate.reports.pairs import available_cpus
from instdecay.evaluate.reports.report import write_report


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=9815)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()

    sim = simulate(args.instances, n_pretrain=10, n_finetune=5, n_checkpoints=4, seed=0)
    ladder = {k: v.astype(np.float32) for k, v in sim.scores.items()}  # what a loader hands over
    sizes = list(ladder)
    last = {k: v[..., -1] for k, v in ladder.items()}
    cpus = available_cpus()
    print(f"ladder: {len(sizes)} sizes x {ladder[sizes[0]].shape} (instances, pretraining, finetuning, checkpoints); "
          f"{cpus} CPUs; n_boot {args.n_boot}")

    def report(workers: int) -> None:
        result = analyze_ladder(ladder, n_boot=args.n_boot, progress=False, workers=workers)
        with tempfile.TemporaryDirectory() as out:
            write_report(result, out)

    figures = {
        f"whole report (analyze_ladder + write_report), {cpus} threads": timed(lambda: report(cpus)),
        "whole report, 1 thread": timed(lambda: report(1)),
        "5 decompositions (last checkpoint, crossed)": timed(lambda: [decompose(x) for x in last.values()]),
        "decay/improve LCBs, all runs, one pair": timed(
            lambda: decay_bounds(last[sizes[0]], last[sizes[-1]], n_boot=args.n_boot, seed=0)),
        "rigorous LCBs (1 run per seed), one pair": timed(
            lambda: decay_bounds(last[sizes[0]], last[sizes[-1]], n_boot=args.n_boot, runs_per_unit=1, seed=0)),
        "momentum, 4 triples, naive + corrected": timed(
            lambda: [momentum(*(last[k] for k in t), noise_correction=nc)
                     for t in list(combinations(sizes, 3))[:4] for nc in (False, True)]),
        "paired t interval, 10 pairs": timed(
            lambda: [paired_bootstrap(last[a], last[b]) for a, b in combinations(sizes, 2)]),
    }
    for name, seconds in figures.items():
        print(f"{name:<62} {seconds:7.2f} s")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
