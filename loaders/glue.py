"""Join instance text from local GLUE files into an instances table that ships without text.

Releases may leave third-party text out; each instance keeps its original split and row id, and its
``instance_hash`` lets the join prove it found the very item that was scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .schema import instance_hash

# task -> original split -> (file under the GLUE folder, text columns)
GLUE_FILES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "sst2": {"train": ("sst2/train.tsv", ("sentence",)), "validation": ("sst2/dev.tsv", ("sentence",))},
    "mnli": {"validation_matched": ("mnli/dev_matched.tsv", ("sentence1", "sentence2")),
             "validation_mismatched": ("mnli/dev_mismatched.tsv", ("sentence1", "sentence2"))},
    "qqp": {"validation": ("qqp/dev.tsv", ("question1", "question2"))},
}


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
    hashes = [instance_hash(a, b if isinstance(b, str) else None, lab)
              for a, b, lab in zip(out["text_a"], out["text_b"], out["label_name"])]
    bad = np.flatnonzero(np.array(hashes) != out["instance_hash"].to_numpy())
    if bad.size:
        row = out.iloc[bad[0]]
        raise ValueError(f"{glue_dir}: text for {row['instance_id']} does not match its instance_hash "
                         f"({bad.size} row(s)): a different copy of GLUE?")
    return out
