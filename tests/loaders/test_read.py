import numpy as np
import pandas as pd
import pytest

from instdecay.loaders import load_instances, load_predictions, load_tensor
from instdecay.loaders import read as read_module
from instdecay.release import build_release


def test_load_predictions_filters_and_formats(toy_release):
    out, _ = toy_release
    df = load_predictions(out, "toy", "validation")
    assert isinstance(df, pd.DataFrame) and len(df) == 15 * 16
    small = load_predictions(out, "toy", "validation", sizes="small", pretrain_seeds=[1], checkpoints=2)
    assert set(small["size"]) == {"small"} and set(small["pretrain_seed"]) == {1} and set(small["checkpoint"]) == {2}
    assert len(small) == 15 * 2
    ds = load_predictions(out, "toy", "heldout", sizes=["tiny"], columns=["run_id", "correct"], output="dataset")
    assert ds.column_names == ["run_id", "correct"] and ds.num_rows == 15 * 8


def test_tensor_values_are_placed_by_label(toy_release):
    out, written = toy_release
    t = load_tensor(out, "toy", "validation", "small", value="prob_gold")
    assert t.values.shape == (15, 2, 2, 2)
    assert t.pretrain_seeds.tolist() == [0, 1] and t.checkpoints.tolist() == [1, 2]
    rows = np.flatnonzero(written["sets"] == "validation")
    assert t.instance_ids.tolist() == [f"i{k}" for k in rows]
    gold = written["gold"][rows]
    for (size, p, f, c), probs in written["probs"].items():
        if size == "small":
            np.testing.assert_allclose(t.values[:, p, f, c - 1], probs[rows, gold], atol=5e-4)  # float16 precision
    last = load_tensor(out, "toy", "validation", "small", checkpoints="last")
    correct = (written["probs"][("small", 1, 0, 2)][rows].argmax(axis=1) == gold).astype(float)
    np.testing.assert_array_equal(last.values[:, 1, 0], correct)
    assert last.values.shape == (15, 2, 2) and last.mask.all()


def test_tensor_feeds_the_statistics(toy_release):
    from instdecay.evaluate import decay_bounds, decompose

    out, _ = toy_release
    tiny = load_tensor(out, "toy", "validation", "tiny")
    small = load_tensor(out, "toy", "validation", "small")
    assert decompose(tiny.values).checkpoint_var is not None
    assert decay_bounds(tiny.values, small.values, n_boot=10).n_instances == 15


def test_missing_runs_raise_or_are_masked(tmp_path, shard_writer):
    root = tmp_path / "shards"
    shard_writer(root, skip={("tiny", 1, 0)})
    build_release(root, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match=r"2 run\(s\) missing or incomplete, e.g. tiny__p1__f0__c1, tiny__p1__f0__c2"):
        load_tensor(tmp_path / "out", "toy", "validation", "tiny")
    t = load_tensor(tmp_path / "out", "toy", "validation", "tiny", allow_missing=True)
    assert not t.mask[:, 1, 0].any() and t.mask[:, 0].all() and np.isnan(t.values[:, 1, 0]).all()


def test_load_instances(toy_release):
    out, _ = toy_release
    inst = load_instances(out, "toy", "heldout")
    assert len(inst) == 15 and set(inst["eval_set"]) == {"heldout"} and inst["text_b"].isna().all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(task="nope", split="validation", size="tiny"), "task 'nope' not in this dataset"),
    (dict(task="toy", split="test", size="tiny"), "split 'test' not an evaluation set"),
    (dict(task="toy", split="validation", size="huge"), "size 'huge' not in toy"),
])
def test_clear_errors(toy_release, kwargs, message):
    out, _ = toy_release
    with pytest.raises(ValueError, match=message):
        load_tensor(out, **kwargs)


def test_not_a_dataset(tmp_path):
    with pytest.raises(ValueError, match="not an instdecay dataset folder"):
        load_tensor(tmp_path, "toy", "validation", "tiny")
    with pytest.raises(ValueError, match="neither a dataset folder nor a Hub dataset id"):
        load_tensor(tmp_path / "missing" / "deep", "toy", "validation", "tiny")


def test_hub_id_downloads_only_the_needed_files(toy_release, monkeypatch):
    out, _ = toy_release
    calls = []

    def fake_snapshot_download(**kwargs):
        calls.append(kwargs)
        return str(out)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    t = load_tensor("instdecay/predictions", "toy", "validation", "tiny", revision="v1.0")
    assert t.values.shape == (15, 2, 2, 2)
    assert calls[0]["repo_id"] == "instdecay/predictions" and calls[0]["repo_type"] == "dataset"
    assert calls[0]["revision"] == "v1.0"
    assert set(calls[0]["allow_patterns"]) == {"manifest.json", "data/toy/validation/tiny.parquet", "instances/toy/validation.parquet"}
    assert read_module.resolve(out) == out
