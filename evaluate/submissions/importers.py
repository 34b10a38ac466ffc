"""Turn predictions people already have into a submission folder: ``predictions.parquet`` (one row per run x
instance) and ``submission.yaml`` (model, task, split and provenance).

- plain per-run CSVs (:func:`import_run_csvs`): ``instance_id`` plus ``pred`` or ``prob_<label>`` columns, one
  file per run; seeds from ``--pretrain-seed/--finetune-seed`` (one file), a seed map, or file names ending in
  ``-seed<k>`` / ``-pseed<p>-fseed<f>`` (or ``_``);
- one size of an instdecay release (:func:`import_release`);
- lm-evaluation-harness samples: :mod:`instdecay.evaluate.lm_eval`.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ...atomic import atomic_write, atomic_write_text
from ...safe_read import UnsafeFile, read_bytes_capped, read_text_capped
from .files import MAX_FILE_BYTES, yaml_checked
from .problems import excerpt

SEED_SUFFIXES = (re.compile(r"(?:^|[-_])pseed(?P<p>\d+)[-_]fseed(?P<f>\d+)$"), re.compile(r"(?:^|[-_])seed(?P<f>\d+)$"))
MAX_SEED = 2**31 - 1  # seeds are int32 in the submission and release formats
MAX_SEED_MAP_BYTES = 1 << 20


def check_seed(value: object, where: str) -> int:
    """A seed as the submission format stores it: a whole number in 0..2**31-1 (booleans are not seeds)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"{where}: a seed must be a whole number from 0 to {MAX_SEED:,}, found {excerpt(value)}")
    return value


def seeds_from_name(name: str) -> tuple[int, int] | None:
    """(pretrain_seed, finetune_seed) from a name ending in ``seed<k>`` or ``pseed<p>-fseed<f>``; else None."""
    for pattern in SEED_SUFFIXES:
        m = pattern.search(name)
        if m:
            return (check_seed(m.groupdict().get("p") or "0", f"{name!r}"), check_seed(m["f"], f"{name!r}"))
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
            seeds = (check_seed(pretrain_seed or 0, "--pretrain-seed"), check_seed(finetune_seed, "--finetune-seed"))
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
    ``pretrain_seed``, ``finetune_seed``; names are run folder or file names. Read as hostile input: size- and
    depth-capped, no YAML aliases, seeds whole numbers in the format's range, every name once."""
    path = Path(path)
    try:
        text = read_text_capped(path, MAX_SEED_MAP_BYTES)
    except UnsafeFile as exc:
        raise ValueError(f"--seed-map {exc}") from None
    if path.suffix.lower() == ".csv":
        try:
            rows = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as exc:
            raise ValueError(f"{path}: not a CSV seed map ({str(exc).splitlines()[0][:80]})") from None
        if "name" not in rows.columns or "finetune_seed" not in rows.columns:
            raise ValueError(f"{path}: a CSV seed map needs columns name, finetune_seed (and pretrain_seed); found "
                             f"{[excerpt(c, 20) for c in rows.columns[:8]]}")
        pairs = [(r["name"], {"pretrain_seed": r.get("pretrain_seed") or "0", "finetune_seed": r["finetune_seed"]})
                 for r in rows.to_dict(orient="records")]
    else:
        try:
            raw = yaml_checked(text, path.name)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: not a seed map ({str(exc).splitlines()[0][:120]})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping name -> {{pretrain_seed, finetune_seed}}")
        pairs = list(raw.items())
    out: dict[str, tuple[int, int]] = {}
    for name, seeds in pairs:
        where = f"{path}: entry {excerpt(name, 40)}"
        if not isinstance(name, str) or not isinstance(seeds, dict) or "finetune_seed" not in seeds:
            raise ValueError(f"{where}: expected name -> {{pretrain_seed: p, finetune_seed: f}}")
        if name in out:
            raise ValueError(f"{where}: listed twice; every run name once")
        out[name] = (check_seed(seeds.get("pretrain_seed", 0), where), check_seed(seeds["finetune_seed"], where))
    return out


OUTPUT_FILES = ("predictions.parquet", "submission.yaml")


def write_submission(frames: Sequence[pd.DataFrame], out: str | Path, metadata: Mapping[str, object],
                     reference: str | Path, revision: str | None = None) -> Path:
    """Check the submission against ``reference`` exactly as ``submit validate`` does, then write
    ``out/predictions.parquet`` and ``out/submission.yaml`` (never through a symbolic link); return ``out``.
    Raises :class:`SubmissionError` (nothing written) when the check finds problems."""
    from ...loaders.read import resolve
    from .checks import check_metadata, find_target
    from .load import load_submission

    if not frames:
        raise ValueError("no input files")
    meta = check_metadata(dict(metadata), "submission metadata")  # flag mistakes name the flag's field, not a file
    find_target(dict(meta), resolve(reference, revision), "--task/--split")
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out}: a symbolic link or a file; give a folder for the submission")
    for name in OUTPUT_FILES:
        if (out / name).is_symlink() or ((out / name).exists() and not (out / name).is_file()):
            raise ValueError(f"{out / name}: a symbolic link or not a file; remove it, the import writes this file")
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False).replace_schema_metadata(None)
    text = yaml.safe_dump(dict(metadata), sort_keys=False, allow_unicode=True)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".importing-") as staging:
        pq.write_table(table, Path(staging) / OUTPUT_FILES[0])
        (Path(staging) / OUTPUT_FILES[1]).write_text(text, encoding="utf-8")
        load_submission(staging, reference, revision=revision)  # SubmissionError: the same report as validate
        atomic_write(out / OUTPUT_FILES[0], lambda tmp: pq.write_table(table, tmp))
        atomic_write_text(out / OUTPUT_FILES[1], text)
    return out


def import_run_csvs(files: Sequence[str | Path], out: str | Path, reference: str | Path, *, task: str, split: str,
                    pretrain_seed: int | None = None, finetune_seed: int | None = None,
                    seed_map: Mapping[str, tuple[int, int]] | None = None,
                    metadata: Mapping[str, object] | None = None, revision: str | None = None) -> Path:
    """Combine plain per-run CSVs (``instance_id`` + ``pred`` or ``prob_<label>``) into a submission folder,
    checked against ``reference`` (task ``task``, evaluation set ``split``) before anything is written."""
    paths = [Path(f) for f in files]
    all_seeds = assign_seeds([(str(p), (p.name, p.stem), p.stem) for p in paths], pretrain_seed=pretrain_seed,
                             finetune_seed=finetune_seed, seed_map=seed_map, unit="file")
    frames = []
    for path, seeds in zip(paths, all_seeds):
        try:
            data = read_bytes_capped(path, MAX_FILE_BYTES)
            header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r").split(",")
            df = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""], dtype=str)
        except UnsafeFile as exc:
            raise ValueError(str(exc)) from None
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ValueError(f"{path}: not a readable CSV ({str(exc).splitlines()[0][:100]})") from None
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise ValueError(f"{path}: column(s) {[excerpt(h, 20) for h in repeated[:3]]} appear more than once; "
                             f"every column once")
        if "instance_id" not in df.columns:
            raise ValueError(f"{path}: needs an 'instance_id' column, found {list(df.columns)}")
        if "pred" not in df.columns and "probs" not in df.columns and not any(c.startswith("prob_") for c in df.columns):
            raise ValueError(f"{path}: no predictions: give a 'pred' column (label name or index) or one "
                             f"'prob_<label>' column per label; found {list(df.columns)}")
        frames.append(df.assign(pretrain_seed=seeds[0], finetune_seed=seeds[1]))
    info: dict[str, object] = {"model": common_model_name([p.stem for p in paths]), "task": task, "split": split}
    info["source"] = {"format": "per-run CSV", "files": [p.name for p in paths]}
    info.update({k: v for k, v in (metadata or {}).items() if v is not None})
    return write_submission(frames, out, info, reference, revision)


def common_model_name(names: Sequence[str]) -> str:
    """The run names without their seed suffix when they all share it ("bert-seed1", "bert-seed2" -> "bert");
    otherwise an error asking for --model."""
    stripped = {SEED_SUFFIXES[1].sub("", SEED_SUFFIXES[0].sub("", n)) for n in names}
    if len(stripped) == 1 and next(iter(stripped)):
        return stripped.pop()
    raise ValueError(f"cannot tell the model's name from the run names {[excerpt(n, 30) for n in names[:3]]}: pass "
                     f"--model NAME")


def import_release(source: str | Path, task: str, split: str, size: str, out: str | Path, reference: str | Path,
                   revision: str | None = None, metadata: dict[str, object] | None = None) -> Path:
    """One size of an instdecay release (e.g. your own model run with ``instdecay generate`` and
    ``release build``) as a submission: the last checkpoint of each run, with class probabilities and the
    release's seed design, checked against ``reference`` before anything is written. ``metadata`` (e.g.
    ``training_data``, ``url``) overrides what the release says."""
    from ...loaders.manifest import seed_design
    from ...loaders.read import load_predictions, read_manifest, resolve

    folder = resolve(source)
    manifest = read_manifest(folder)
    tasks = manifest["tasks"]
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
            "params": int(grid[size]["n_params"]), "seed_design": seed_design(manifest, task),
            "source": {"format": "instdecay release", "release": str(source), "size": size}}
    info.update({k: v for k, v in (metadata or {}).items() if v is not None})
    return write_submission([df], out, info, reference, revision)
