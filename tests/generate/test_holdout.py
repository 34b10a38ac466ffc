"""The held-out split is clean by construction: no held-out (or excluded) text inside a pool row, no pool row inside
one; checked by brute force on synthetic phrase trees and on the shipped SST-2 split when the data is present."""

from pathlib import Path

import numpy as np
import pytest

from instdecay.generate.holdout import HoldoutSplit, _ranges, _unranges, clean_holdout, overlap

SPLIT = Path(__file__).resolve().parents[2] / "generate" / "specs" / "sst2-holdout.json"


def _phrase_file(rng, n_sentences=60):
    """Sentences of random words and their sub-phrases (contiguous word spans), like SST-2's parse-tree rows."""
    words = [f"w{k}" for k in range(40)]
    rows = []
    for _ in range(n_sentences):
        sentence = list(rng.choice(words, rng.integers(3, 9)))
        rows.append(" ".join(sentence))
        for _ in range(4):
            a = int(rng.integers(0, len(sentence)))
            b = int(rng.integers(a + 1, len(sentence) + 1))
            rows.append(" ".join(sentence[a:b]))
    return rows


def _brute_overlap(pool, other):
    return (sum(any(o in p for p in pool) for o in other), sum(any(p in o for o in other) for p in pool))


@pytest.mark.parametrize("seed", range(5))
def test_no_text_of_one_side_inside_the_other_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    rows = _phrase_file(rng)
    exclude = [" ".join(rng.choice([f"w{k}" for k in range(40)], 4)) for _ in range(5)]
    split = clean_holdout(rows, exclude=exclude, fraction=0.2, seed=seed)
    assert sorted(split.pool + split.heldout + split.removed) == list(range(len(rows)))
    assert not set(split.pool) & set(split.heldout)
    pool, held = [rows[k] for k in split.pool], [rows[k] for k in split.heldout]
    assert held and pool
    assert _brute_overlap(pool, held) == (0, 0)
    assert _brute_overlap(pool, exclude) == (0, 0)
    assert split.overlap["heldout"] == {"evaluation_inside_pool": 0, "pool_inside_evaluation": 0}


def test_positional_holdout_leaks_and_the_overlap_measure_sees_it():
    rows = _phrase_file(np.random.default_rng(0))
    pool, held = rows[: len(rows) // 2], rows[len(rows) // 2 :]  # by position, as the old reference did
    measured = overlap(pool, held)
    assert measured == dict(zip(("evaluation_inside_pool", "pool_inside_evaluation"), _brute_overlap(pool, held)))
    assert measured["pool_inside_evaluation"] > 0


def test_row_ranges_round_trip():
    rows = [0, 1, 2, 5, 7, 8, 20]
    assert _ranges(rows) == "0-2,5,7-8,20" and _unranges(_ranges(rows)) == rows and _unranges("") == []


def test_the_shipped_sst2_split_is_clean_and_matches_its_data(glue_dir):
    from instdecay.generate.holdout import read_tsv_column
    from instdecay.loaders.manifest import sha256_file

    sst2 = glue_dir / "sst2"
    split = HoldoutSplit.read(SPLIT)
    assert split.source_sha256 == sha256_file(sst2 / "train.tsv")
    rows = read_tsv_column(sst2 / "train.tsv", "sentence")
    pool, held = [rows[k] for k in split.pool], [rows[k] for k in split.heldout]
    validation = read_tsv_column(sst2 / "dev.tsv", "sentence")
    assert overlap(pool, held) == {"evaluation_inside_pool": 0, "pool_inside_evaluation": 0}
    assert overlap(pool, validation) == {"evaluation_inside_pool": 0, "pool_inside_evaluation": 0}
    assert len(split.heldout) > 5000 and len(split.pool) > 55_000
