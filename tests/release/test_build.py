import hashlib
import json

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset

from instdecay.release import build_release, validate_release
from instdecay.release import build as build_module


def test_release_loads_with_datasets_for_every_config(toy_release):
    out, written = toy_release
    ds = load_dataset(str(out), "toy")
    assert set(ds) == {"validation", "heldout"}
    n_runs = 2 * 2 * 2 * 2  # sizes x P x F x checkpoints
    assert ds["validation"].num_rows == 15 * n_runs
    assert load_dataset(str(out))["validation"].num_rows == 15 * n_runs  # the default config
    assert ds["validation"].features["pred"].names == ["a", "b", "c"]  # ClassLabel, not a bare integer
    runs = load_dataset(str(out), "runs", split="toy")
    assert runs.num_rows == n_runs and set(runs.column_names) >= {"run_id", "accuracy", "hyperparameters"}
    instances = load_dataset(str(out), "toy_instances")
    assert set(instances) == {"validation", "heldout"} and sum(d.num_rows for d in instances.values()) == 30
    assert instances["validation"].features["label"].names == ["a", "b", "c"]


def test_layout_manifest_and_card(toy_release):
    out, _ = toy_release
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "data/toy/validation/tiny.parquet", "data/toy/validation/small.parquet", "data/toy/heldout/tiny.parquet",
        "data/toy/heldout/small.parquet", "runs/toy.parquet", "instances/toy/validation.parquet",
        "instances/toy/heldout.parquet"}
    assert manifest["tasks"]["toy"]["grid"]["tiny"] == {
        "family": "toy", "n_params": 1000, "pretrain_seeds": [0, 1], "finetune_seeds": [0, 1],
        "checkpoints": [1, 2], "n_runs": 4}
    assert manifest["tasks"]["toy"]["sizes"] == ["tiny", "small"]  # ordered by parameter count
    card = (out / "README.md").read_text()
    assert "config_name: toy" in card and "default: true" in card and "$" not in card.split("```")[0]
    assert "| toy | tiny | validation |" in card
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "other" and header["license_link"] == "LICENSE.md" and header["license_name"]
    assert "MIT License" in (out / "LICENSE.md").read_text()
    assert [c["config_name"] for c in header["configs"]] == ["toy", "toy_instances", "runs"]


def test_card_declares_dataset_info_and_the_manifest_hash(toy_release):
    out, _ = toy_release
    manifest = json.loads((out / "manifest.json").read_text())
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    info = {c["config_name"]: c for c in header["dataset_info"]}
    assert set(info) == {"toy", "toy_instances", "runs"}
    splits = {s["name"]: s["num_examples"] for s in info["toy"]["splits"]}
    assert splits == {split: sum(f["rows"] for p, f in manifest["files"].items() if p.startswith(f"data/toy/{split}/"))
                      for split in ("validation", "heldout")}
    features = {f["name"]: f for f in info["toy"]["features"]}
    assert features["pred"]["dtype"]["class_label"]["names"] == {"0": "a", "1": "b", "2": "c"}
    assert info["toy"]["download_size"] == sum(f["bytes"] for p, f in manifest["files"].items() if p.startswith("data/"))
    assert hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest() in card.split("---", 2)[2]


def test_rows_of_a_run_are_contiguous_and_sorted(toy_release):
    out, _ = toy_release
    table = pq.read_table(out / "data/toy/validation/tiny.parquet")
    run_ids = table.column("run_id").to_pylist()
    changes = sum(a != b for a, b in zip(run_ids, run_ids[1:]))
    assert changes == len(set(run_ids)) - 1
    assert run_ids[0] == "tiny__p0__f0__c1" and run_ids[-1] == "tiny__p1__f1__c2"


def test_build_is_byte_identical(tmp_path, toy_shards):
    root, _ = toy_shards
    a, b = tmp_path / "a", tmp_path / "b"
    build_release(root, a, progress=False)
    build_release(root, b, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_crash_mid_build_leaves_the_previous_release(tmp_path, toy_shards, monkeypatch):
    root, _ = toy_shards
    out = tmp_path / "release"
    build_release(root, out, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(build_module, "render_card", crash)
    with pytest.raises(RuntimeError):
        build_release(root, out, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    assert validate_release(out) == []


def test_release_without_text_keeps_hashes_and_card_has_the_analyses(tmp_path, toy_shards):
    from instdecay.cli import main
    from instdecay.loaders import load_instances

    root, _ = toy_shards
    assert main(["release", "build", str(root), str(tmp_path / "out"), "--no-text"]) == 0
    inst = load_instances(tmp_path / "out", "toy")
    assert inst["text_a"].isna().all() and inst["instance_hash"].str.len().eq(64).all()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Analyses" in card and "### toy / validation (15 instances)" in card and "tiny → small" in card
    assert "![ECDF of instance differences, tiny vs small](figures/cdf_toy_validation.png)" in card
    assert (tmp_path / "out" / "figures" / "cdf_toy_validation.png").read_bytes()[:4] == b"\x89PNG"


def test_attachments_are_copied_hashed_validated_and_pushed(tmp_path, toy_shards):
    from instdecay.release.push import plan_push

    (tmp_path / "pool.json").write_text('{"pool": "0-9"}')
    (tmp_path / "card.json").write_text(json.dumps({"attachments": {"training_pool/toy.json": "pool.json"}}))
    out = tmp_path / "release"
    build_release(toy_shards[0], out, card_meta=tmp_path / "card.json", analysis=False, progress=False)
    entry = json.loads((out / "manifest.json").read_text())["attachments"]["training_pool/toy.json"]
    assert (out / "training_pool/toy.json").read_text() == '{"pool": "0-9"}'
    assert entry == {"sha256": hashlib.sha256(b'{"pool": "0-9"}').hexdigest(), "bytes": 15}
    assert "training_pool/toy.json" in plan_push(out, "org/name").files
    (out / "training_pool/toy.json").write_text('{"pool": "0-99"}')
    assert validate_release(out) == ["training_pool/toy.json: sha256 differs from manifest.json (file changed or "
                                     "corrupted)"]


@pytest.mark.parametrize("target", ["../outside.json", "data/x.json", "manifest.json", "extra.parquet"])
def test_attachments_cannot_land_outside_or_over_the_data(tmp_path, toy_shards, target):
    (tmp_path / "pool.json").write_text("{}")
    (tmp_path / "card.json").write_text(json.dumps({"attachments": {target: "pool.json"}}))
    with pytest.raises(build_module.ShardError, match="must be a new path inside the release"):
        build_release(toy_shards[0], tmp_path / "release", card_meta=tmp_path / "card.json", analysis=False,
                      progress=False)
