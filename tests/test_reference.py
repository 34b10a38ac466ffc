"""The shipped reference dataset (reference/sst2-cpu): complete, valid, loadable, and joinable with GLUE text."""

import json

import numpy as np
import pandas as pd
import pytest

from instdecay.generate.holdout import HoldoutSplit
from instdecay.loaders import DEFAULT_REFERENCE, load_instances, load_tensor
from instdecay.loaders.manifest import sha256_file
from instdecay.release import validate_release

pytestmark = pytest.mark.skipif(not (DEFAULT_REFERENCE / "manifest.json").exists(),
                                reason="reference/sst2-cpu is not built in this checkout")


def test_reference_is_valid_and_complete():
    assert validate_release(DEFAULT_REFERENCE) == []
    manifest = json.loads((DEFAULT_REFERENCE / "manifest.json").read_text())
    entry = manifest["tasks"]["sst2"]
    assert entry["eval_sets"] == {"validation": 872, "heldout_train": 6299}
    assert len(entry["sizes"]) >= 4 and entry["seed_design"] == "nested"
    for size in entry["sizes"]:
        grid = entry["grid"][size]
        assert len(grid["pretrain_seeds"]) >= 8 and len(grid["finetune_seeds"]) >= 4 and len(grid["checkpoints"]) >= 2


def test_every_run_draws_its_randomness_from_all_of_its_seeds():
    runs = pd.read_parquet(DEFAULT_REFERENCE / "runs" / "sst2.parquet")
    first = runs[runs["checkpoint"] == runs["checkpoint"].min()]
    assert (first["seed_design"] == "nested").all()
    streams = pd.DataFrame([json.loads(s) if isinstance(s, str) else dict(s) for s in first["stream_seeds"]])
    assert not streams.isna().any().any() and len(streams.columns) >= 3
    for column in streams:  # no two runs share a stream (the crossed design shared them across pretraining seeds)
        assert streams[column].is_unique, column


def test_the_published_training_pool_is_the_split_the_held_out_set_comes_from():
    manifest = json.loads((DEFAULT_REFERENCE / "manifest.json").read_text())
    pool_file = DEFAULT_REFERENCE / "training_pool" / "sst2.json"
    assert manifest["attachments"]["training_pool/sst2.json"]["sha256"] == sha256_file(pool_file)
    split = HoldoutSplit.read(pool_file)
    held = load_instances(DEFAULT_REFERENCE, "sst2", "heldout_train")
    assert sorted(int(i.split("-")[1]) for i in held["instance_id"]) == sorted(split.heldout)
    assert not set(split.pool) & set(split.heldout)
    assert split.overlap["heldout"] == {"evaluation_inside_pool": 0, "pool_inside_evaluation": 0}


def test_reference_is_a_credible_ladder():
    """Sizes ordered by parameters; at the last checkpoint, mean accuracy rises with size on every evaluation set
    and every size beats the majority class by at least 10 points."""
    manifest = json.loads((DEFAULT_REFERENCE / "manifest.json").read_text())
    entry = manifest["tasks"]["sst2"]
    runs = pd.read_parquet(DEFAULT_REFERENCE / "runs" / "sst2.parquet", columns=["size", "n_params"])
    params = runs.groupby("size")["n_params"].first()
    assert list(params.loc[entry["sizes"]]) == sorted(params), "sizes are not listed in order of parameters"
    for split in entry["eval_sets"]:
        labels = load_instances(DEFAULT_REFERENCE, "sst2", split)["label"].to_numpy()
        majority = np.bincount(labels).max() / len(labels)
        acc = [load_tensor(DEFAULT_REFERENCE, "sst2", split, size).values[..., -1].mean() for size in entry["sizes"]]
        assert np.all(np.diff(acc) > 0), (split, acc)
        assert min(acc) >= majority + 0.10, (split, majority, acc)


def test_reference_loads_with_datasets_and_as_tensors():
    from datasets import load_dataset

    ds = load_dataset(str(DEFAULT_REFERENCE), "sst2")
    assert set(ds) == {"validation", "heldout_train"}
    t = load_tensor(DEFAULT_REFERENCE, "sst2", "validation", "L6-H384")
    assert t.values.shape == (872, 10, 5, 2) and t.mask.all()


def test_reference_ships_no_text_but_proves_its_items():
    inst = load_instances(DEFAULT_REFERENCE, "sst2")
    assert inst["text_a"].isna().all() and inst["instance_hash"].str.len().eq(64).all()


def test_text_joins_from_glue_and_matches_every_hash(glue_dir):
    inst = load_instances(DEFAULT_REFERENCE, "sst2", glue_dir=glue_dir)  # raises if any hash differs
    assert inst["text_a"].notna().all() and len(inst) == 872 + 6299
