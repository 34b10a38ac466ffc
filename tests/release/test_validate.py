import numpy as np
import pyarrow as pa

from instdecay.release import build_release, validate_release
from instdecay.release.shards import RunMeta, make_predictions, read_task, shard_paths, write_shard


def test_valid_release_has_no_problems(toy_release):
    out, _ = toy_release
    assert validate_release(out) == []


def test_tampered_file_fails_its_hash(toy_release):
    out, _ = toy_release
    path = out / "data/toy/validation/tiny.parquet"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    assert validate_release(out) == ["data/toy/validation/tiny.parquet: sha256 differs from manifest.json "
                                     "(file changed or corrupted)"]


def test_incomplete_grid_names_the_missing_runs(tmp_path, shard_writer):
    root = tmp_path / "shards"
    shard_writer(root, skip={("tiny", 1, 1)})
    build_release(root, tmp_path / "out", progress=False)
    problems = validate_release(tmp_path / "out")
    assert "data/toy/validation/tiny.parquet: grid incomplete, missing 2 run(s): tiny__p1__f1__c1, tiny__p1__f1__c2" in problems


def test_identical_probabilities_across_runs_are_flagged(tmp_path, toy_shards):
    root, _ = toy_shards
    info, instances = read_task(root, "toy")
    src = RunMeta.from_json(shard_paths(root, RunMeta.from_json(sorted((root / "toy/runs/tiny").glob("*.json"))[0]))[1])
    copy = RunMeta(**{**src.__dict__, "finetune_seed": 1})
    parquet, _ = shard_paths(root, src)
    table = pa.parquet.read_table(parquet)
    tables = []
    for c in (1, 2):
        for eval_set in ("validation", "heldout"):
            rows = table.filter(pa.compute.and_(pa.compute.equal(table["checkpoint"], c),
                                                pa.compute.equal(table["eval_set"], eval_set)))
            probs = np.array(rows.column("probs").to_pylist(), dtype=np.float32)
            gold = instances.to_pandas().set_index("instance_id").loc[rows.column("instance_id").to_pylist(), "label"]
            tables.append(make_predictions(copy, info, c, eval_set, rows.column("instance_id").to_pylist(),
                                           gold.to_numpy(), probs))
    write_shard(root, copy, pa.concat_tables(tables))  # the p0/f1 run now repeats p0/f0 exactly
    build_release(root, tmp_path / "out", progress=False)
    problems = validate_release(tmp_path / "out")
    assert any("run tiny__p0__f1__c1 has exactly the same probabilities as tiny__p0__f0__c1" in p for p in problems)
