"""A held-out evaluation set that is clean by construction for phrase-structured training files such as SST-2.

SST-2's training rows are phrases cut from the parse trees of whole review sentences, so a random row of the file is
usually a substring of other rows: holding out rows by position leaves their text inside the training pool. The
rule here holds out whole *groups*:

1. Texts are compared after collapsing whitespace; containment is plain substring containment (stricter than
   word boundaries: "ring" is inside "boring").
2. The *sentences* are the texts not contained in any other text of the file.
3. A seeded random ``fraction`` of the sentences is held out. The held-out set is every row whose text occurs only
   inside held-out sentences (the sentences themselves and the phrases no other sentence has).
4. The pool is every other row, less (a) rows whose text occurs inside a held-out sentence too (phrases shared with
   pool sentences), and (b) rows that contain, or are contained in, any text of the other evaluation sets given
   (``exclude``: e.g. GLUE's validation sentences).

So no held-out or excluded evaluation text occurs inside any pool row and no pool row occurs inside one; the split
records the measured overlap of its own pool (0 in both directions) and the sha256 of the file it was computed on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..loaders.manifest import sha256_file

RULE = ("held out: every row whose text occurs only inside the held-out sentences (a seeded random fraction of the "
        "sentences, i.e. of the texts not contained in any other text); pool: every other row, less the rows whose "
        "text occurs inside a held-out sentence or contains or is contained in a text of another evaluation set "
        "(substring containment after collapsing whitespace)")


def normalise(text: str) -> str:
    return " ".join(text.split())


def _inside(texts: Sequence[str], haystack: Sequence[str]) -> np.ndarray:
    """For each text, whether it occurs inside any of ``haystack``."""
    joined = "\x00".join(haystack)
    return np.fromiter((t in joined for t in texts), dtype=bool, count=len(texts))


def _sentences(unique: Sequence[str]) -> np.ndarray:
    """Which of the distinct texts are not contained in any other one (a second occurrence in the joined texts)."""
    joined = "\x00".join(unique)
    return np.fromiter((joined.find(u, joined.find(u) + 1) < 0 for u in unique), dtype=bool, count=len(unique))


def overlap(pool: Sequence[str], evaluation: Sequence[str]) -> dict[str, int]:
    """How many evaluation texts occur inside some pool text, and how many pool texts inside some evaluation text."""
    pool, evaluation = [normalise(t) for t in pool], [normalise(t) for t in evaluation]
    return {"evaluation_inside_pool": int(_inside(evaluation, pool).sum()),
            "pool_inside_evaluation": int(_inside(pool, evaluation).sum())}


@dataclass(frozen=True)
class HoldoutSplit:
    """Row indices (0-based, in the training file) of the pool, the held-out set and the rows in neither."""

    pool: list[int]
    heldout: list[int]
    removed: list[int]
    n_sentences: int
    n_heldout_sentences: int
    fraction: float
    seed: int
    source_sha256: str
    overlap: dict[str, dict[str, int]]
    rule: str = RULE

    def rows(self, key: str) -> list[int]:
        if key not in ("pool", "heldout", "removed"):
            raise ValueError(f"split key {key!r}: expected 'pool', 'heldout' or 'removed'")
        return getattr(self, key)

    def to_json(self) -> str:
        out = asdict(self)
        for key in ("pool", "heldout", "removed"):
            out[key] = _ranges(out[key])
        return json.dumps(out, indent=1) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> HoldoutSplit:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            for key in ("pool", "heldout", "removed"):
                raw[key] = _unranges(raw[key])
            return cls(**raw)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: not a held-out split file ({type(exc).__name__}: {exc})") from None


def _ranges(rows: Sequence[int]) -> str:
    """Sorted row indices as compact ranges: "0-4,7,9-12"."""
    rows = np.asarray(sorted(rows), dtype=np.int64)
    if rows.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts, ends = rows[np.r_[0, breaks + 1]], rows[np.r_[breaks, rows.size - 1]]
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends))


def _unranges(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def clean_holdout(texts: Sequence[str], *, exclude: Sequence[str] = (), fraction: float = 0.1, seed: int = 0,
                  source_sha256: str = "") -> HoldoutSplit:
    """Split the rows ``texts`` of a training file into a pool and a held-out set by the module's rule."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction: expected a share of the sentences in (0, 1), found {fraction}")
    rows = [normalise(t) for t in texts]
    unique, inverse = np.unique(np.array(rows, dtype=object), return_inverse=True)
    unique = unique.tolist()
    is_sentence = _sentences(unique)
    sentences = np.flatnonzero(is_sentence)
    held = np.zeros(len(unique), dtype=bool)
    held[np.random.default_rng(seed).choice(sentences, round(fraction * sentences.size), replace=False)] = True
    held_sentences = [unique[k] for k in np.flatnonzero(held)]
    pool_sentences = [unique[k] for k in np.flatnonzero(is_sentence & ~held)]
    in_held, in_pool = _inside(unique, held_sentences), _inside(unique, pool_sentences)
    heldout_text = in_held & ~in_pool
    excluded = [normalise(t) for t in exclude]
    touches_eval = _inside(unique, excluded) | _contains_any(unique, excluded)
    pool_text = ~in_held & ~touches_eval
    pool = np.flatnonzero(pool_text[inverse]).tolist()
    heldout = np.flatnonzero(heldout_text[inverse]).tolist()
    removed = np.flatnonzero(~pool_text[inverse] & ~heldout_text[inverse]).tolist()
    pool_texts = [unique[k] for k in np.flatnonzero(pool_text)]
    measured = {"heldout": overlap(pool_texts, [unique[k] for k in np.flatnonzero(heldout_text)])}
    if excluded:
        measured["excluded"] = overlap(pool_texts, excluded)
    return HoldoutSplit(pool, heldout, removed, int(sentences.size), int(held.sum()), fraction, seed, source_sha256,
                        measured)


def _contains_any(texts: Sequence[str], needles: Sequence[str]) -> np.ndarray:
    """For each text, whether any of ``needles`` occurs inside it."""
    if not needles:
        return np.zeros(len(texts), dtype=bool)
    joined = "\x00".join(texts)
    starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    hit = np.zeros(len(texts), dtype=bool)
    for needle in needles:  # few needles (an evaluation set), each found in one pass over the joined texts
        at = joined.find(needle)
        while at >= 0:
            k = int(np.searchsorted(starts, at, side="right")) - 1
            hit[k] = True
            at = joined.find(needle, starts[k] + len(texts[k]) + 1)
    return hit


def read_tsv_column(path: str | Path, column: str) -> list[str]:
    """One column of a GLUE-style TSV (unquoted, no NA conversion)."""
    import pandas as pd

    try:
        return pd.read_csv(path, sep="\t", quoting=3, keep_default_na=False, dtype=str)[column].tolist()
    except KeyError:
        raise ValueError(f"{path}: no column {column!r}") from None


def write_holdout(train: str | Path, out: str | Path, *, column: str = "sentence",
                  exclude: Sequence[str | Path] = (), fraction: float = 0.1, seed: int = 0) -> HoldoutSplit:
    """Compute the split of the TSV ``train`` (its ``column``) and write it to ``out`` (JSON, rows as ranges)."""
    excluded = [t for path in exclude for t in read_tsv_column(path, column)]
    split = clean_holdout(read_tsv_column(train, column), exclude=excluded, fraction=fraction, seed=seed,
                          source_sha256=sha256_file(train))
    atomic_write_text(Path(out), split.to_json())
    return split
