"""Turn predictions people already have into a submission file (one parquet with one row per run x instance).

- lm-evaluation-harness ``--log_samples`` output: ``samples_<task>_<timestamp>.jsonl``, one file per run. For
  multiple-choice tasks ``filtered_resps`` holds one (log-likelihood, is-greedy) pair per choice, in label
  order: probabilities are their softmax. For generated answers it holds text, matched to a label name.
  ``doc_id`` is the row of the evaluated split; ``id_template`` turns it into the reference's instance id
  (``"validation-{doc_id}"`` for the instdecay releases, whose ids are ``<original split>-<row>``).
- plain per-run CSVs: ``instance_id`` plus ``pred`` or ``prob_<label>`` columns, one file per run.

Seeds come from the file name (``...p<P>...f<F>...`` or ``...seed<F>...``) or, failing that, from the sorted file
order as finetuning seeds 0, 1, ... of pretraining seed 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

SEED_PATTERNS = (re.compile(r"p(?P<p>\d+)[^/]*?f(?P<f>\d+)"), re.compile(r"seed[_-]?(?P<f>\d+)"))


def _seeds(files: list[Path]) -> list[tuple[int, int]]:
    found = []
    for f in files:
        for pattern in SEED_PATTERNS:
            m = pattern.search(f.stem)
            if m:
                found.append((int(m.groupdict().get("p") or 0), int(m["f"])))
                break
        else:
            found = []
            break
    if len(found) == len(files) and len(set(found)) == len(found):
        return found
    return [(0, k) for k in range(len(files))]


def _lm_eval_rows(path: Path, labels: list[str], id_template: str) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc_id = int(record["doc_id"])
                resps = record.get("filtered_resps", record.get("resps"))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: line {line_no}: not an lm-evaluation-harness sample ({exc})") from None
            row: dict[str, object] = {"instance_id": id_template.format(doc_id=doc_id)}
            flat = [r[0] if isinstance(r, list) and len(r) == 1 and isinstance(r[0], list) else r for r in resps]
            if flat and all(isinstance(r, list) and len(r) >= 1 for r in flat):
                if len(flat) != len(labels):
                    raise ValueError(f"{path}: line {line_no}: {len(flat)} choices, expected {len(labels)} labels {labels}")
                loglik = np.array([float(r[0]) for r in flat])
                p = np.exp(loglik - loglik.max())
                row["probs"] = (p / p.sum()).tolist()
            else:
                answer = str(flat[0] if flat else "").strip()
                row["pred"] = answer
            rows.append(row)
    return pd.DataFrame(rows)


def import_lm_eval(files: list[str | Path], out: str | Path, labels: list[str],
                   id_template: str = "validation-{doc_id}") -> Path:
    """Convert lm-evaluation-harness sample logs (one file per run) into ``out/predictions.parquet``."""
    paths = sorted(Path(f) for f in files)
    frames = []
    for (p, f), path in zip(_seeds(paths), paths):
        df = _lm_eval_rows(path, labels, id_template)
        frames.append(df.assign(pretrain_seed=p, finetune_seed=f))
    return _write(frames, out)


def import_run_csvs(files: list[str | Path], out: str | Path) -> Path:
    """Combine plain per-run CSVs (``instance_id`` + ``pred`` or ``prob_<label>``) into ``out/predictions.parquet``."""
    paths = sorted(Path(f) for f in files)
    frames = []
    for (p, f), path in zip(_seeds(paths), paths):
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
        if "instance_id" not in df.columns:
            raise ValueError(f"{path}: needs an 'instance_id' column, found {list(df.columns)}")
        frames.append(df.assign(pretrain_seed=p, finetune_seed=f))
    return _write(frames, out)


def _write(frames: list[pd.DataFrame], out: str | Path) -> Path:
    if not frames:
        raise ValueError("no input files")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "predictions.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
    return path


def import_release(source: str | Path, task: str, split: str, size: str, out: str | Path) -> Path:
    """One size of an instdecay release (e.g. your own model run with ``instdecay generate`` and
    ``release build``) as a submission: the last checkpoint of each run, with class probabilities."""
    from ..loaders.read import load_predictions, read_manifest, resolve

    folder = resolve(source)
    grid = read_manifest(folder)["tasks"][task]["grid"]
    if size not in grid:
        raise ValueError(f"{source}: no size {size!r} in {task}; sizes: {sorted(grid)}")
    df = load_predictions(folder, task, split, sizes=size, checkpoints=max(grid[size]["checkpoints"]),
                          columns=["instance_id", "pretrain_seed", "finetune_seed", "probs"])
    return _write([df.assign(probs=df["probs"].map(lambda v: [float(x) for x in v]))], out)
