"""Does bf16 autocast change what a run predicts? The same finetuning runs (same seeds, same data) trained in fp32
and compared with the grid's bf16 shards, run by run: accuracy per evaluation set at the last checkpoint, the mean
difference and the SD of accuracy over finetuning seeds (the noise a precision effect must be judged against), and
how often the two precisions disagree on an instance.

    python benchmarks/precision.py [--spec generate/specs/cpu-sst2.yaml] [--sizes L2-H384 L6-H384] [--runs 5]

The grid must have written the bf16 shards of pretraining seed 0 first (``instdecay generate grid``).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

SPEC = Path(__file__).resolve().parents[1] / "generate" / "specs" / "cpu-sst2.yaml"


def last_checkpoint(path: Path):
    table = pq.read_table(path, columns=["eval_set", "checkpoint", "instance_id", "correct"]).to_pandas()
    return table[table["checkpoint"] == table["checkpoint"].max()].sort_values(["eval_set", "instance_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(SPEC))
    parser.add_argument("--sizes", nargs="*")
    parser.add_argument("--runs", type=int, default=5, help="finetuning seeds of pretraining seed 0")
    args = parser.parse_args()

    import torch

    from instdecay.generate.finetune import run_finetune_group
    from instdecay.generate.spec import load_spec
    from instdecay.release.shards import RunMeta, shard_paths

    torch.set_num_threads(1)
    spec = load_spec(args.spec)
    print(f"{'size':<9} {'set':<14} {'bf16 acc':>9} {'fp32 acc':>9} {'mean diff':>10} {'seed SD':>8} {'disagree':>9}")
    for name in args.sizes or [s.name for s in spec.sizes]:
        size = spec.size(name)
        runs = [(size.pretrained[0].seed, f) for f in spec.finetune_seeds[: args.runs]]
        stub = lambda p, f: RunMeta(spec.task.name, size.family, name, 0, "", p, f, ())  # noqa: E731
        bf16 = [shard_paths(spec.output, stub(p, f))[0] for p, f in runs]
        missing = [p for p in bf16 if not p.with_suffix(".json").exists()]
        if missing:
            raise SystemExit(f"{missing[0]}: not written yet; run the grid first")
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = run_finetune_group(replace(spec, output=Path(tmp)), name, runs, progress=False, precision="fp32")
            pairs = [(last_checkpoint(a), last_checkpoint(b)) for a, b in zip(bf16, fp32)]
        for eval_set in spec.task.eval_sets:
            acc = np.array([[a[a.eval_set == eval_set]["correct"].mean(), b[b.eval_set == eval_set]["correct"].mean()]
                            for a, b in pairs])
            disagree = np.mean([(a[a.eval_set == eval_set]["correct"].to_numpy()
                                 != b[b.eval_set == eval_set]["correct"].to_numpy()).mean() for a, b in pairs])
            print(f"{name:<9} {eval_set:<14} {acc[:, 0].mean():>9.4f} {acc[:, 1].mean():>9.4f} "
                  f"{(acc[:, 0] - acc[:, 1]).mean():>+10.4f} {acc[:, 0].std(ddof=1):>8.4f} {disagree:>9.4f}")


if __name__ == "__main__":
    main()
