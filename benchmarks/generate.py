"""Benchmark finetuning throughput: runs per hour of the one-run-per-process loop against stacked runs, at equal work.

For each size of a spec (default ``generate/specs/cpu-sst2.yaml``), the same finetuning runs (the first
``--runs`` finetuning seeds of pretraining seed 0, full task data, every checkpoint evaluated) are trained twice
with ``--workers`` processes at a time, one torch thread each (the grid's layout on a 2-core machine):

- ``one run per process``: a fresh process per run (imports, data loading and tokenisation included), the
  ``transformers`` model, fp32 (the loop before stacking and bf16; with the fused AdamW both loops now use, so the
  ratio understates the gain over the previous loop, whose foreach AdamW the profile shows);
- ``stacked``: ``--runs-per-process`` runs per process in one loop with stacked weights, bf16 autocast where the
  CPU computes bf16 natively (``precision="auto"``).

It prints the wall time, runs per hour and the ratio for each size, and first a profile of one training step
(milliseconds per run and step, by phase) of each loop. Pretrained models missing from the spec's work folder are
pretrained first (not timed). Shards go to a temporary folder.

    python benchmarks/generate.py [--spec generate/specs/cpu-sst2.yaml] [--runs 4] [--runs-per-process 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "generate" / "specs" / "cpu-sst2.yaml"

CHILD = """
import sys, torch
from dataclasses import replace
from pathlib import Path
torch.set_num_threads(1)
from instdecay.generate.finetune import run_finetune_group
from instdecay.generate.spec import load_spec
spec = replace(load_spec(sys.argv[1]), output=Path(sys.argv[2]))
runs = [(0, int(f)) for f in sys.argv[5].split(",")]
run_finetune_group(spec, sys.argv[3], runs, progress=False, precision=sys.argv[4], stack=sys.argv[6] == "stack")
"""


def timed_jobs(commands: list[list[str]], workers: int) -> float:
    """Wall time of running the commands, ``workers`` at a time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    start, pending, running = time.perf_counter(), list(commands), []
    while pending or running:
        while pending and len(running) < workers:
            running.append(subprocess.Popen(pending.pop(0), env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        time.sleep(0.2)
        for proc in [p for p in running if p.poll() is not None]:
            if proc.returncode:
                raise SystemExit(f"a benchmark job failed (exit {proc.returncode}): {proc.args}")
            running.remove(proc)
    return time.perf_counter() - start


def profile_step(spec, size_name: str, steps: int = 10) -> None:
    """Milliseconds per run and training step, by phase, of the transformers loop (fp32) and of 5 stacked runs."""
    import numpy as np
    import torch

    from instdecay.generate.data import load_source
    from instdecay.generate.device import autocast, resolve_precision
    from instdecay.generate.finetune import _load_model, _stacked_batch, padded, tokenize
    from instdecay.generate.stacked import DropoutMasks, StackedBert

    torch.set_num_threads(1)
    size = spec.size(size_name)
    train = load_source(spec.task.train, spec.task)
    path = spec.pretrained_path(size, size.pretrained[0])
    labels = torch.tensor(train.gold)
    rng = np.random.default_rng(0)
    batch_size = size.hyperparameters.batch_size

    def run(loop: str) -> dict[str, float]:
        runs = 1 if loop == "transformers" else 5
        loaded = [_load_model(path, size.pretrained[0], 2, seed) for seed in range(runs)]
        tokenizer = loaded[0][0]
        ids, types = tokenize(tokenizer, train, size.hyperparameters.max_length)
        mode = "fp32" if loop == "transformers" else resolve_precision(torch.device("cpu"))
        model = loaded[0][1] if loop == "transformers" else StackedBert([m for _, m in loaded])
        params = model.parameters() if loop == "transformers" else model.parameter_groups(0.01)
        optimizer = torch.optim.AdamW(params, lr=1e-4, foreach=loop == "transformers", fused=loop != "transformers")
        table = padded(ids, types, tokenizer.pad_token_id)
        gens = [torch.Generator().manual_seed(k) for k in range(runs)]
        phases = dict.fromkeys(("batch", "forward", "backward", "clip", "optimizer"), 0.0)
        model.train()
        for step in range(steps + 2):
            rows = [rng.choice(len(train), batch_size, replace=False) for _ in range(runs)]
            t0 = time.perf_counter()
            if loop == "transformers":
                feats = [{"input_ids": ids[r], "token_type_ids": types[r]} for r in rows[0]]
                batch = tokenizer.pad(feats, return_tensors="pt")
            else:
                batch = _stacked_batch(table, rows, int(table[2][np.stack(rows)].max()), torch.device("cpu"))
                masks = DropoutMasks(model, gens, batch[2])
            t1 = time.perf_counter()
            target = torch.stack([labels[r] for r in rows])
            with autocast(torch.device("cpu"), mode):
                if loop == "transformers":
                    loss = model(**batch, labels=target[0]).loss
                else:
                    logits = model(*batch, dropout=masks)
                    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                                             reduction="none").view(runs, -1).mean(1).sum()
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            if loop == "transformers":
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            else:
                model.finish_backward(1.0)
            t4 = time.perf_counter()
            optimizer.step()
            model.zero_grad()
            t5 = time.perf_counter()
            if step >= 2:
                for key, a, b in zip(phases, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                    phases[key] += (b - a) * 1000 / steps / runs
        return phases

    print(f"profile of one training step of {size_name} (ms per run and step, 1 thread):")
    for loop, label in (("transformers", "one run per process (transformers, fp32, foreach AdamW)"),
                        ("stacked", "stacked, 5 runs (token layout, bf16 where native, fused AdamW)")):
        phases = run(loop)
        shown = ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
        print(f"  {label}: {shown}; total {sum(phases.values()):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(SPEC))
    parser.add_argument("--runs", type=int, default=4, help="finetuning runs per size (seeds 0..runs-1 of pretraining seed 0)")
    parser.add_argument("--runs-per-process", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", nargs="*", help="sizes to time (default: all of the spec)")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    from instdecay.generate.device import resolve_precision
    from instdecay.generate.pretrain import pretrain
    from instdecay.generate.spec import load_spec

    import torch

    spec = load_spec(args.spec)
    sizes = args.sizes or [s.name for s in spec.sizes]
    for name in sizes:  # not timed
        if spec.size(name).pretrained[0].pretrain is not None:
            pretrain(spec, name, spec.size(name).pretrained[0].seed, progress=False)
    print(f"{args.spec}: sizes {', '.join(sizes)}; {args.runs} runs per size, {args.workers} processes at a time, "
          f"1 thread each; stacked precision: {resolve_precision(torch.device('cpu'))}")
    if not args.no_profile:
        profile_step(spec, sizes[0])
    seeds = [str(f) for f in spec.finetune_seeds[: args.runs]]
    print(f"{'size':<10} {'one run per process':>22} {'stacked':>22} {'ratio':>6}")
    totals = [0.0, 0.0]
    for name in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            base = [[sys.executable, "-c", CHILD, args.spec, f"{tmp}/a", name, "fp32", f, "plain"] for f in seeds]
            groups = [seeds[i : i + args.runs_per_process] for i in range(0, len(seeds), args.runs_per_process)]
            stacked = [[sys.executable, "-c", CHILD, args.spec, f"{tmp}/b", name, "auto", ",".join(g), "stack"]
                       for g in groups]
            times = [timed_jobs(base, args.workers), timed_jobs(stacked, args.workers)]
        totals = [a + b for a, b in zip(totals, times)]
        rates = [3600 * len(seeds) / t for t in times]
        print(f"{name:<10} {times[0]:>7.0f} s {rates[0]:>6.1f} runs/h {times[1]:>7.0f} s {rates[1]:>6.1f} runs/h "
              f"{times[0] / times[1]:>5.2f}x")
    n = len(seeds) * len(sizes)
    print(f"{'all':<10} {totals[0]:>7.0f} s {3600 * n / totals[0]:>6.1f} runs/h {totals[1]:>7.0f} s "
          f"{3600 * n / totals[1]:>6.1f} runs/h {totals[0] / totals[1]:>5.2f}x")


if __name__ == "__main__":
    main()
