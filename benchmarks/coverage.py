"""Coverage of the decay/improve LCBs and of the paired accuracy interval, measured on an independent audit model.

The model (``tests/evaluate/stats/designs.py``, not ``instdecay.evaluate.simulate``): logit = instance mean + a global
shift per pretraining seed + an instance-level pretraining effect + a finetuning effect, Bernoulli outcomes,
truths by quadrature. Prints one table row per (design, pretraining seeds P, input):

- decay/improve LCB coverage = share of replicates with LCB <= the true fraction of these instances (nominal
  95%); runs = (N, P, 5) 0/1 runs, ensembles = (N, P) majority votes (truth: ensemble accuracy);
- matched designs: the larger side given a different design, compared with ``match="subsample"``; with one
  pretraining seed the truth is about that pretrained model (its accuracy over finetuning runs);
- the paired t interval for the accuracy difference (nominal 95%, two-sided) against the population truth,
  beside the multi-bootstrap percentile interval.

    python benchmarks/coverage.py [--reps 200] [--instances 2000] [--n-boot 500] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluate" / "stats"))
from designs import DESIGNS, draw  # noqa: E402

from instdecay.evaluate import decay_bounds, paired_bootstrap  # noqa: E402

N_FINETUNE = 5
DECAY_ROWS = [(d, p, inp) for d in ("null", "null-noshift", "sharp", "realistic", "seedvar", "seedvar-null")
              for p in (2, 4, 10) for inp in ("runs", "ensembles")]
# (design, smaller (P, F), larger (P, F)): the larger side is subsampled or the smaller is, to match.
MATCHED_ROWS = [("null-finetune-only", (4, 4), (1, 4)), ("null-finetune-only", (4, 4), (1, 2)),
                ("null", (4, 4), (4, 1)), ("null", (2, 1), (10, 1)), ("sharp", (4, 4), (1, 4)),
                ("seedvar-null", (4, 4), (1, 4))]
PAIRED_ROWS = [(d, p) for d in ("realistic", "seedvar") for p in (2, 4, 10)]


def _decay_case(args: tuple) -> tuple[float, float, float, float, float, float]:
    design, p, inp, rep, n, n_boot = args
    dr = draw(DESIGNS[design], n, p, N_FINETUNE, seed=rep)
    if inp == "runs":
        s, l_, dec, imp = *dr.runs, dr.true_decay_runs, dr.true_improve_runs
    else:
        s, l_, dec, imp = *dr.ensembles, dr.true_decay_ensembles, dr.true_improve_ensembles
    b = decay_bounds(s, l_, n_boot=n_boot, seed=rep)
    return b.decay_lcb <= dec, b.improve_lcb <= imp, b.decay_lcb, dec, b.decay, b.improve_lcb


def _matched_case(args: tuple) -> tuple[float, float, float, float, float, float]:
    design, (ps, fs), (pl, fl), rep, n, n_boot = args
    dr = draw(DESIGNS[design], n, max(ps, pl), max(fs, fl), seed=rep)
    s, l_ = dr.runs[0][:, :ps, :fs], dr.runs[1][:, :pl, :fl]
    acc_s = dr.run_accuracy[0] if ps > 1 else dr.accuracy_given_seed[0][:, 0]
    acc_l = dr.run_accuracy[1] if pl > 1 else dr.accuracy_given_seed[1][:, 0]
    dec, imp = float((acc_l < acc_s).mean()), float((acc_l > acc_s).mean())
    b = decay_bounds(s, l_, match="subsample", n_boot=n_boot, seed=rep)
    return b.decay_lcb <= dec, b.improve_lcb <= imp, b.decay_lcb, dec, b.decay, b.improve_lcb


def _paired_case(args: tuple) -> tuple[float, float, float, float]:
    design, p, rep, n, n_boot = args
    dr = draw(DESIGNS[design], n, p, N_FINETUNE, seed=10_000 + rep)
    t = paired_bootstrap(*dr.runs, seed=rep)
    pc = paired_bootstrap(*dr.runs, interval="percentile", n_boot=n_boot, seed=rep)
    truth = dr.true_delta
    return t.ci_low <= truth <= t.ci_high, pc.ci_low <= truth <= pc.ci_high, t.ci_high - t.ci_low, pc.ci_high - pc.ci_low


def _row(labels: list, res: np.ndarray) -> None:
    """A table row: the labels, then coverage of the decay and improve LCBs, mean LCB, truth, paper estimate."""
    means = res[:, :5].mean(axis=0)
    cells = [*map(str, labels), f"{means[0]:.3f}", f"{means[1]:.3f}", *(f"{v:.4f}" for v in means[2:])]
    print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="replicates per row (default: %(default)s)")
    parser.add_argument("--instances", type=int, default=2000, help="instances per replicate (default: %(default)s)")
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap replicates (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default: %(default)s)")
    args = parser.parse_args()
    n, reps, nb = args.instances, args.reps, args.n_boot
    se = np.sqrt(0.95 * 0.05 / reps)
    print(f"{reps} replicates per row, {n} instances, {nb} bootstrap replicates; nominal 95% "
          f"(binomial SE of a coverage near 95%: {se:.3f})\n")
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        print("| design | P | input | decay LCB coverage | improve LCB coverage | mean decay LCB | mean true decay "
              "| mean paper estimate |")
        print("|---|---|---|---|---|---|---|---|")
        for design, p, inp in DECAY_ROWS:
            res = np.array(list(pool.map(_decay_case, [(design, p, inp, r, n, nb) for r in range(reps)])))
            _row([design, p, inp], res)
        print("\n| design | smaller P x F | larger P x F | decay LCB coverage | improve LCB coverage | mean decay LCB "
              "| mean true decay | mean paper estimate |")
        print("|---|---|---|---|---|---|---|---|")
        for design, small, large in MATCHED_ROWS:
            res = np.array(list(pool.map(_matched_case, [(design, small, large, r, n, nb) for r in range(reps)])))
            _row([design, f"{small[0]}x{small[1]}", f"{large[0]}x{large[1]}"], res)
        print("\n| design | P | t interval coverage | percentile coverage | mean t width | mean percentile width |")
        print("|---|---|---|---|---|---|")
        for design, p in PAIRED_ROWS:
            res = np.array(list(pool.map(_paired_case, [(design, p, r, n, nb) for r in range(reps)])))
            print(f"| {design} | {p} | {res[:, 0].mean():.3f} | {res[:, 1].mean():.3f} | {res[:, 2].mean():.4f} "
                  f"| {res[:, 3].mean():.4f} |", flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
