"""Malformed shards give one clear error naming the file and the problem."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from instdecay.release import ShardError, build_release


def _rewrite(path, table):
    pq.write_table(table, path)


def _first_shard(root):
    return sorted((root / "toy" / "runs").glob("*/*.parquet"))[0]


def _build(root, tmp_path):
    build_release(root, tmp_path / "out", progress=False)


def test_wrong_number_of_probability_columns(tmp_path, toy_shards):
    root, _ = toy_shards
    path = _first_shard(root)
    t = pq.read_table(path)
    probs = pa.array([[0.5, 0.5]] * t.num_rows, pa.list_(pa.float32()))
    _rewrite(path, t.set_column(t.schema.get_field_index("probs"), "probs", probs))
    with pytest.raises(ShardError, match=rf"{path.name}: row 0: field 'probs' has 2 entries, expected 3"):
        _build(root, tmp_path)


def test_probabilities_not_summing_to_one(tmp_path, toy_shards):
    root, _ = toy_shards
    path = _first_shard(root)
    t = pq.read_table(path)
    probs = pa.array([[0.5, 0.4, 0.3]] * t.num_rows, pa.list_(pa.float32()))
    _rewrite(path, t.set_column(t.schema.get_field_index("probs"), "probs", probs))
    with pytest.raises(ShardError, match=r"sum to 1.*found sum 1\.2"):
        _build(root, tmp_path)


def test_duplicate_rows(tmp_path, toy_shards):
    root, _ = toy_shards
    path = _first_shard(root)
    t = pq.read_table(path)
    _rewrite(path, pa.concat_tables([t, t.slice(0, 1)]))
    with pytest.raises(ShardError, match="has 16 of the 15 instances|duplicate"):
        _build(root, tmp_path)


def test_unknown_instance(tmp_path, toy_shards):
    root, _ = toy_shards
    path = _first_shard(root)
    t = pq.read_table(path)
    ids = pc.if_else(pc.equal(t.column("instance_id"), "i0"), "nope", t.column("instance_id"))
    _rewrite(path, t.set_column(t.schema.get_field_index("instance_id"), "instance_id", ids))
    with pytest.raises(ShardError, match=r"unknown instance \(validation, nope\)"):
        _build(root, tmp_path)


def test_unknown_gold_label(tmp_path, toy_shards):
    root, _ = toy_shards
    path = root / "toy" / "instances.parquet"
    t = pq.read_table(path)
    labels = pa.array(np.full(t.num_rows, 7, dtype=np.int16))
    _rewrite(path, t.set_column(t.schema.get_field_index("label"), "label", labels))
    with pytest.raises(ShardError, match=r"instances.parquet: field 'label' must index \['a', 'b', 'c'\]"):
        _build(root, tmp_path)


def test_missing_predictions_file(tmp_path, toy_shards):
    root, _ = toy_shards
    path = _first_shard(root)
    path.unlink()
    with pytest.raises(ShardError, match=f"its predictions file {path.name} is missing"):
        _build(root, tmp_path)


def test_metadata_disagreeing_with_rows(tmp_path, toy_shards):
    root, _ = toy_shards
    meta_path = _first_shard(root).with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["pretrain_seed"] = 9
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ShardError, match="field 'pretrain_seed' must be 9"):
        _build(root, tmp_path)


def test_corrupt_parquet(tmp_path, toy_shards):
    root, _ = toy_shards
    path = _first_shard(root)
    path.write_bytes(b"not parquet")
    with pytest.raises(ShardError, match=f"{path.name}: cannot read parquet"):
        _build(root, tmp_path)


def test_unfinished_shard_is_ignored(tmp_path, toy_shards):
    # A crash between the parquet and its metadata leaves a shard without .json: not part of the release.
    root, _ = toy_shards
    path = _first_shard(root)
    path.with_suffix(".json").unlink()
    _build(root, tmp_path)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert path.stem not in manifest["tasks"]["toy"]["runs"]


def test_cli_reports_a_bad_shard_in_one_line(tmp_path, toy_shards, capsys):
    from instdecay.cli import main

    root, _ = toy_shards
    _first_shard(root).write_bytes(b"junk")
    assert main(["release", "build", str(root), str(tmp_path / "out")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # earlier lines: the progress bar
    assert last.startswith("instdecay release: error:") and "cannot read parquet" in last
