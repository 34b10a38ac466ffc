"""Join instance text into an instances table that ships without text: from local GLUE TSV files, or from the
Hugging Face ``nyu-mll/glue`` dataset (a Hub id, downloaded into the HF cache, or a local folder in its layout:
``<folder>/<task>/<split>-00000-of-00001.parquet``).

Releases may leave third-party text out; each instance keeps its original split and row id, and its
``instance_hash`` lets the join prove it found the very item that was scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .schema import instance_hash

# task -> original split -> (file under the GLUE folder, text columns)
GLUE_FILES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "sst2": {"train": ("sst2/train.tsv", ("sentence",)), "validation": ("sst2/dev.tsv", ("sentence",))},
    "mnli": {"validation_matched": ("mnli/dev_matched.tsv", ("sentence1", "sentence2")),
             "validation_mismatched": ("mnli/dev_mismatched.tsv", ("sentence1", "sentence2"))},
    "qqp": {"validation": ("qqp/dev.tsv", ("question1", "question2"))},
}


# task -> text columns of the nyu-mll/glue parquet export (its rows follow GLUE's files, so row = original id)
HUB_COLUMNS: dict[str, tuple[str, ...]] = {"sst2": ("sentence",), "mnli": ("premise", "hypothesis"),
                                           "qqp": ("question1", "question2")}
HUB_GLUE = "nyu-mll/glue"


def join_hub_text(instances: pd.DataFrame, source: str | Path, task: str) -> pd.DataFrame:
    """Fill ``text_a``/``text_b`` from the ``nyu-mll/glue`` parquet files (``source``: a local folder in that layout,
    or a Hub dataset id fetched with only the needed files) by original split and row, checked against every
    ``instance_hash``; ``ValueError`` when a file is missing or an item does not match."""
    if task not in HUB_COLUMNS:
        raise ValueError(f"no GLUE text mapping for task {task!r}; known: {sorted(HUB_COLUMNS)}")
    splits = sorted(instances["original_split"].unique())
    folder = Path(source)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(str(source), repo_type="dataset",
                                            allow_patterns=[f"{task}/{split}-*.parquet" for split in splits]))
        except Exception as exc:  # noqa: BLE001 - offline or unreachable: one line
            raise ValueError(f"{source}: text not available ({type(exc).__name__})") from None
    out = instances.copy()
    for split, rows in out.groupby("original_split").groups.items():
        files = sorted((folder / task).glob(f"{split}-*.parquet"))
        if not files:
            raise ValueError(f"{folder / task}: no {split}-*.parquet file (needed for the text of {task} {split})")
        table = pd.concat([pq.read_table(f, columns=list(HUB_COLUMNS[task])).to_pandas() for f in files])
        ids = out.loc[rows, "original_id"].astype(int).to_numpy()
        if ids.max(initial=-1) >= len(table):
            raise ValueError(f"{folder / task}: {split} has {len(table)} rows, instances refer to row {ids.max()}")
        for column, name in zip(("text_a", "text_b"), HUB_COLUMNS[task]):
            out.loc[rows, column] = table[name].to_numpy()[ids]
    return _checked(out, source)


def _checked(out: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    hashes = [instance_hash(a, b if isinstance(b, str) else None, lab)
              for a, b, lab in zip(out["text_a"], out["text_b"], out["label_name"])]
    bad = np.flatnonzero(np.array(hashes) != out["instance_hash"].to_numpy())
    if bad.size:
        row = out.iloc[bad[0]]
        raise ValueError(f"{source}: text for {row['instance_id']} does not match its instance_hash "
                         f"({bad.size} row(s)): a different copy of GLUE?")
    return out


def join_glue_text(instances: pd.DataFrame, glue_dir: str | Path, task: str) -> pd.DataFrame:
    """Fill ``text_a``/``text_b`` from the GLUE TSVs (read with quoting off) by original split and row id, and
    check every filled row against its ``instance_hash``; raise ``ValueError`` on a file that is missing or an
    item that does not match."""
    if task not in GLUE_FILES:
        raise ValueError(f"no GLUE text mapping for task {task!r}; known: {sorted(GLUE_FILES)}")
    out = instances.copy()
    for split, rows in out.groupby("original_split").groups.items():
        if split not in GLUE_FILES[task]:
            raise ValueError(f"{task}: no GLUE file known for original split {split!r}")
        rel, columns = GLUE_FILES[task][split]
        path = Path(glue_dir) / rel
        if not path.exists():
            raise ValueError(f"{path}: GLUE file not found (needed for the text of {task} {split})")
        table = pd.read_csv(path, sep="\t", quoting=3, keep_default_na=False, dtype=str)
        ids = out.loc[rows, "original_id"].astype(int).to_numpy()
        if ids.max(initial=-1) >= len(table):
            raise ValueError(f"{path}: has {len(table)} rows, instances refer to row {ids.max()}")
        out.loc[rows, "text_a"] = table[columns[0]].to_numpy()[ids]
        if len(columns) > 1:
            out.loc[rows, "text_b"] = table[columns[1]].to_numpy()[ids]
    return _checked(out, glue_dir)
