"""Benchmark tensor loading from a local release at MNLI scale and print values per second.

Builds (once, in a temporary folder) a release of one 3-class task with 9,815 instances (MNLI dev matched)
and one size with 10 pretraining x 5 finetuning seeds x 4 checkpoints (1.96M prediction rows), then times
``load_tensor`` (correctness and gold-label probability) against reading the same file's value column with
pyarrow (the floor any loader pays), and ``load_predictions``. The sha256 check against the manifest runs once
per file and process (timed separately); the tensor timings are best of 3 after it.

    python benchmarks/load.py [--instances 9815] [--sizes 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instdecay.loaders import load_predictions, load_tensor, schema
from instdecay.release import build_release
from instdecay.release.shards import Checkpoint, RunMeta, TaskInfo, make_predictions, write_shard, write_task


def write_shards(root: Path, n: int, n_sizes: int) -> None:
    rng = np.random.default_rng(0)
    info = TaskInfo("mnli", ("entailment", "neutral", "contradiction"), ("validation_matched",))
    ids = [f"validation_matched-{k}" for k in range(n)]
    gold = rng.integers(0, 3, n)
    write_task(root, info, pa.table({
        "task": ["mnli"] * n, "eval_set": ["validation_matched"] * n, "instance_id": ids,
        "original_split": ["validation_matched"] * n, "original_id": [str(k) for k in range(n)],
        "text_a": [None] * n, "text_b": [None] * n, "label": gold.astype(np.int16),
        "label_name": [info.label_names[g] for g in gold], "instance_hash": [""] * n}, schema=schema.INSTANCES))
    for s in range(n_sizes):
        for p in range(10):
            for f in range(5):
                meta = RunMeta("mnli", "bench", f"size{s}", 10**6 * (s + 1), "bench", p, f,
                               tuple(Checkpoint(c, c / 3, 0) for c in (9, 10, 11, 12)))
                tables = [make_predictions(meta, info, c, "validation_matched", ids, gold,
                                           rng.dirichlet(np.ones(3), n)) for c in (9, 10, 11, 12)]
                write_shard(root, meta, pa.concat_tables(tables))


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=9815)
    parser.add_argument("--sizes", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "shards", Path(tmp) / "release"
        start = time.perf_counter()
        write_shards(root, args.instances, args.sizes)
        result = build_release(root, out, progress=False)
        print(f"built {result.n_rows:,} rows in {time.perf_counter() - start:.1f} s "
              f"({sum(f['bytes'] for f in result.manifest['files'].values()) / 2**20:.1f} MiB on disk)")
        n_values = args.instances * 10 * 5 * 4
        path = out / schema.predictions_path("mnli", "validation_matched", "size0")
        start = time.perf_counter()
        load_tensor(out, "mnli", "validation_matched", "size0")
        print(f"first load_tensor, with the sha256 check of the file: {time.perf_counter() - start:.3f} s")
        for value in ("correct", "prob_gold"):
            seconds = best_of(lambda: load_tensor(out, "mnli", "validation_matched", "size0", value=value))
            floor = best_of(lambda: pq.read_table(path, columns=[value]).column(value).to_numpy())
            print(f"load_tensor(value={value!r}) {n_values:,} values: {seconds:.3f} s = "
                  f"{n_values / seconds / 1e6:.1f} M values/s; reading the column alone: {floor:.3f} s = "
                  f"{n_values / floor / 1e6:.1f} M values/s; ratio {floor / seconds:.2f} of the column's speed")
        seconds = best_of(lambda: load_predictions(out, "mnli", "validation_matched", sizes="size0"))
        print(f"load_predictions (pandas, all columns) {n_values:,} rows: {seconds:.3f} s = {n_values / seconds / 1e6:.2f} M rows/s")


if __name__ == "__main__":
    main()
