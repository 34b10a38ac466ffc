"""Turn predictions people already have into a submission folder: ``predictions.parquet`` (one row per run x
instance) and ``submission.yaml`` (model, task, split and provenance).

- plain per-run CSVs (:func:`import_run_csvs`): ``instance_id`` plus ``pred`` or ``prob_<label>`` columns, one
  file per run; seeds from ``--pretrain-seed/--finetune-seed`` (one file), a seed map, or file names ending in
  ``-seed<k>`` / ``-pseed<p>-fseed<f>`` (or ``_``);
- one size of an instdecay release (:func:`import_release`);
- lm-evaluation-harness samples: :mod:`instdecay.evaluate.lm_eval`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ...atomic import atomic_write, atomic_write_text
from ...safe_read import read_text_capped

SEED_SUFFIXES = (re.compile(r"(?:^|[-_])pseed(?P<p>\d+)[-_]fseed(?P<f>\d+)$"), re.compile(r"(?:^|[-_])seed(?P<f>\d+)$"))


def seeds_from_name(name: str) -> tuple[int, int] | None:
    """(pretrain_seed, finetune_seed) from a name ending in ``seed<k>`` or ``pseed<p>-fseed<f>``; else None."""
    for pattern in SEED_SUFFIXES:
        m = pattern.search(name)
        if m:
            return int(m.groupdict().get("p") or 0), int(m["f"])
    return None


def assign_seeds(runs: Sequence[tuple[str, Sequence[str], str]], *, pretrain_seed: int | None = None,
                 finetune_seed: int | None = None, seed_map: Mapping[str, tuple[int, int]] | None = None,
                 unit: str = "file") -> list[tuple[int, int]]:
    """(pretrain_seed, finetune_seed) of each run, given as (where, names a seed map may use, the name whose
    ``-seed<k>`` / ``-pseed<p>-fseed<f>`` ending gives the seeds): explicit seeds (a single run), a seed map, or
    the name pattern; never other digits. Two runs with the same seeds are refused."""
    out, seen = [], {}
    for where, keys, name in runs:
        if finetune_seed is not None:
            if len(runs) > 1:
                raise ValueError(f"--finetune-seed names the seed of one run; {len(runs)} runs were given: use "
                                 f"--seed-map or {unit} names ending in -seed<k>")
            seeds = (pretrain_seed or 0, finetune_seed)
        elif seed_map is not None:
            key = next((k for k in keys if k in seed_map), None)
            if key is None:
                raise ValueError(f"{where}: not in the seed map (its keys are {unit} names)")
            seeds = seed_map[key]
        else:
            seeds = seeds_from_name(name)
            if seeds is None:
                raise ValueError(f"{where}: cannot tell its seeds from the {unit} name {name!r}; name {unit}s "
                                 f"<run>-seed<k> or <run>-pseed<p>-fseed<f>, or pass --seed-map / --finetune-seed")
        if seeds in seen:
            raise ValueError(f"{where} and {seen[seeds]} both claim pretrain_seed {seeds[0]}, finetune_seed {seeds[1]}")
        seen[seeds] = where
        out.append(seeds)
    return out


def read_seed_map(path: str | Path) -> dict[str, tuple[int, int]]:
    """A YAML/JSON mapping ``name: {pretrain_seed: p, finetune_seed: f}``, or a CSV with columns ``name``,
    ``pretrain_seed``, ``finetune_seed``; names are run folder or file names."""
    path = Path(path)
    text = read_text_capped(path, 1 << 20)
    try:
        if path.suffix.lower() == ".csv":
            rows = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False).to_dict(orient="records")
            return {r["name"]: (int(r.get("pretrain_seed") or 0), int(r["finetune_seed"])) for r in rows}
        raw = yaml.safe_load(text)
        return {str(k): (int(v.get("pretrain_seed", 0)), int(v["finetune_seed"])) for k, v in raw.items()}
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: expected name -> pretrain_seed, finetune_seed ({type(exc).__name__}: "
                         f"{str(exc)[:80]})") from None


def write_submission(frames: Sequence[pd.DataFrame], out: str | Path, metadata: Mapping[str, object]) -> Path:
    """Write ``out/predictions.parquet`` and ``out/submission.yaml`` atomically; return ``out``."""
    if not frames:
        raise ValueError("no input files")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    atomic_write(out / "predictions.parquet", lambda tmp: pq.write_table(table.replace_schema_metadata(None), tmp))
    atomic_write_text(out / "submission.yaml", yaml.safe_dump(dict(metadata), sort_keys=False, allow_unicode=True))
    return out


def import_run_csvs(files: Sequence[str | Path], out: str | Path, *, task: str | None = None, split: str | None = None,
                    pretrain_seed: int | None = None, finetune_seed: int | None = None,
                    seed_map: Mapping[str, tuple[int, int]] | None = None,
                    metadata: Mapping[str, object] | None = None) -> Path:
    """Combine plain per-run CSVs (``instance_id`` + ``pred`` or ``prob_<label>``) into a submission folder."""
    paths = [Path(f) for f in files]
    all_seeds = assign_seeds([(str(p), (p.name, p.stem), p.stem) for p in paths], pretrain_seed=pretrain_seed,
                             finetune_seed=finetune_seed, seed_map=seed_map, unit="file")
    frames = []
    for path, seeds in zip(paths, all_seeds):
        df = pd.read_csv(StringIO(read_text_capped(path)), keep_default_na=False, na_values=[""])
        if "instance_id" not in df.columns:
            raise ValueError(f"{path}: needs an 'instance_id' column, found {list(df.columns)}")
        if "pred" not in df.columns and "probs" not in df.columns and not any(c.startswith("prob_") for c in df.columns):
            raise ValueError(f"{path}: no predictions: give a 'pred' column (label name or index) or one "
                             f"'prob_<label>' column per label; found {list(df.columns)}")
        frames.append(df.assign(pretrain_seed=seeds[0], finetune_seed=seeds[1]))
    info: dict[str, object] = {"model": Path(paths[0]).parent.name if paths else "submission"}
    info.update({k: v for k, v in (("task", task), ("split", split)) if v})
    info["source"] = {"format": "per-run CSV", "files": [p.name for p in paths]}
    info.update({k: v for k, v in (metadata or {}).items() if v is not None})
    return write_submission(frames, out, info)


def import_release(source: str | Path, task: str, split: str, size: str, out: str | Path) -> Path:
    """One size of an instdecay release (e.g. your own model run with ``instdecay generate`` and
    ``release build``) as a submission: the last checkpoint of each run, with class probabilities."""
    from ...loaders.read import load_predictions, read_manifest, resolve

    folder = resolve(source)
    tasks = read_manifest(folder)["tasks"]
    if task not in tasks:
        raise ValueError(f"{source}: no task {task!r}; tasks: {sorted(tasks)}")
    if split not in tasks[task]["eval_sets"]:
        raise ValueError(f"{source}: task {task} has no evaluation set {split!r}; evaluation sets: "
                         f"{list(tasks[task]['eval_sets'])}")
    grid = tasks[task]["grid"]
    if size not in grid:
        raise ValueError(f"{source}: no size {size!r} in {task}; sizes: {sorted(grid)}")
    df = load_predictions(folder, task, split, sizes=size, checkpoints=max(grid[size]["checkpoints"]),
                          columns=["instance_id", "pretrain_seed", "finetune_seed", "probs"])
    df = df.assign(probs=df["probs"].map(lambda v: [float(x) for x in v]))
    info = {"model": f"{size} ({Path(str(source)).name})", "task": task, "split": split,
            "params": int(grid[size]["n_params"]), "source": {"format": "instdecay release", "release": str(source),
                                                               "size": size}}
    return write_submission([df], out, info)
