"""Altered data is never read as intact: loaders check hashes, `release validate` re-derives every column."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from instdecay.loaders import load_instances, load_predictions, load_tensor
from instdecay.loaders.manifest import sha256_file
from instdecay.release import validate_release
from instdecay.release.shards import write_parquet

REL = "data/toy/validation/tiny.parquet"


def rewrite(release, rel, change, rehash=True):
    """Replace a file's table with ``change(table)`` and (like a careful attacker) recompute its manifest entry."""
    path = release / rel
    table = change(pq.read_table(path))
    write_parquet(table, path, row_group_size=max(table.num_rows, 1))
    if rehash:
        manifest = json.loads((release / "manifest.json").read_text())
        manifest["files"][rel] = {"sha256": sha256_file(path), "rows": table.num_rows, "bytes": path.stat().st_size}
        (release / "manifest.json").write_text(json.dumps(manifest))


def set_column(table, name, values):
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values, table.schema.field(name).type))


def test_a_bit_flip_is_caught_by_the_loaders(toy_release):
    out, _ = toy_release
    path = out / REL
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    for load in (lambda: load_tensor(out, "toy", "validation", "tiny"),
                 lambda: load_predictions(out, "toy", "validation", sizes="tiny")):
        with pytest.raises(ValueError, match="sha256 differs from manifest.json"):
            load()


def test_a_missing_size_file_is_an_error_not_a_smaller_table(toy_release):
    out, _ = toy_release
    (out / REL).unlink()
    with pytest.raises(ValueError, match="missing"):
        load_predictions(out, "toy", "validation")
    with pytest.raises(ValueError, match="missing"):
        load_predictions(out, "toy", "validation", verify=False)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("tasks"), "tasks: expected a non-empty object"),
    (lambda m: m["tasks"]["toy"]["grid"]["tiny"].update(pretrain_seeds="0,1"), "grid.tiny: expected n_params"),
    (lambda m: m.update(format_version=1), "format_version 1"),
    (lambda m: m["files"][REL].update(sha256=5), f"files.{REL}: expected sha256"),
    (lambda m: m.update(attachments={"../x.json": {"sha256": "0" * 64, "bytes": 1}}), "attachments.../x.json"),
    (lambda m: m.update(attachments={"pool.json": {"sha256": "0" * 64, "bytes": -1}}), "attachments.pool.json"),
])
def test_a_malformed_manifest_is_one_clear_error(toy_release, edit, message):
    out, _ = toy_release
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=message):
        load_instances(out, "toy")
    assert any(message.split(":")[0] in p for p in validate_release(out))


def _flip_first(values):
    values = np.array(values)
    values[0] = 1 - values[0]
    return values


@pytest.mark.parametrize("change, message", [
    (lambda t: set_column(t, "correct", _flip_first(t.column("correct").to_numpy())), "'correct' disagrees"),
    (lambda t: set_column(t, "probs", [[5.0, float("nan"), 0.0]] + t.column("probs").to_pylist()[1:]),
     "'probs' not finite"),
    (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "repeated"),
    (lambda t: t.slice(1), "without every instance"),
    (lambda t: set_column(t, "checkpoint", np.where(t.column("checkpoint").to_numpy() == 1, 2, 1)), "run_id"),
    (lambda t: set_column(t, "pretrain_seed", np.zeros(t.num_rows)), "run_id"),
    (lambda t: set_column(t, "pred", (t.column("pred").to_numpy() + 1) % 3), "not the most probable class"),
    (lambda t: set_column(t, "prob_gold", t.column("prob_gold").to_numpy() * 0.5), "'prob_gold' disagrees"),
    (lambda t: t.take(np.arange(t.num_rows)[::-1]), "not in (pretrain_seed"),
])
def test_validate_rederives_every_column_even_with_rehashed_files(toy_release, change, message):
    out, _ = toy_release
    rewrite(out, REL, change)
    problems = validate_release(out)
    assert any(message in p for p in problems), problems


def test_a_gold_label_flip_is_caught(toy_release):
    out, _ = toy_release
    rel = "instances/toy/validation.parquet"
    rewrite(out, rel, lambda t: set_column(t, "label", (t.column("label").to_numpy() + 1) % 3))
    assert any("'label_name' disagrees" in p for p in validate_release(out))

    def flip_both(t):  # label and label_name flipped together: the hash and the predictions disagree
        label = (t.column("label").to_numpy() + 1) % 3  # two steps from the original labels
        return set_column(set_column(t, "label", label), "label_name", np.array(["a", "b", "c"])[label])

    rewrite(out, rel, flip_both)
    problems = validate_release(out)
    assert any("'instance_hash' does not match" in p for p in problems)
    assert any("'correct' disagrees with pred and the gold label" in p for p in problems)


def test_reversed_label_names_in_the_manifest(toy_release):
    out, _ = toy_release
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tasks"]["toy"]["label_names"].reverse()
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert any("'label_name' disagrees with the manifest's label_names" in p for p in validate_release(out))


def test_a_copied_run_is_caught_from_the_data_whatever_the_manifest_says(toy_release):
    """A run overwritten with another run's probabilities, the file rehashed and its fingerprint in the manifest
    left (or made) different: validate recomputes the comparison from the stored data."""
    out, _ = toy_release

    def copy_run(t):
        run = pc.equal(t.column("run_id"), "tiny__p0__f0__c1").to_numpy(zero_copy_only=False)
        other = pc.equal(t.column("run_id"), "tiny__p0__f1__c1").to_numpy(zero_copy_only=False)
        for column in ("probs", "pred", "prob_gold", "correct"):
            values = t.column(column).to_pylist()
            for k, v in zip(np.flatnonzero(other), [values[k] for k in np.flatnonzero(run)]):
                values[k] = v
            t = set_column(t, column, values)
        return t

    rewrite(out, REL, copy_run)
    assert any("run tiny__p0__f1__c1 has exactly the same probabilities as tiny__p0__f0__c1" in p
               for p in validate_release(out))


def test_a_file_whose_rows_differ_from_the_manifest_is_refused_by_every_loader(toy_release):
    """Rewritten with its sha256 updated but not its row count: never a short or NaN table."""
    out, _ = toy_release
    rewrite(out, REL, lambda t: t.slice(0, t.num_rows - 10))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"][REL]["rows"] += 10  # the attacker kept the old count
    (out / "manifest.json").write_text(json.dumps(manifest))
    for load in (lambda: load_predictions(out, "toy", "validation"), lambda: load_tensor(out, "toy", "validation", "tiny"),
                 lambda: load_predictions(out, "toy", "validation", verify=False)):
        with pytest.raises(ValueError, match="rows, manifest.json says"):
            load()


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace('"n_params": 1000', '"n_params": 1' + "0" * 400), "n_params"),
    (lambda text: text.replace('"format_version": 3,', '"format_version": 3, "format_version": 3,'), "duplicate key"),
    (lambda text: text.replace('"pretrain_seeds": [', '"pretrain_seeds": [99999999999999, '), "integers within"),
])
def test_unbounded_numbers_and_duplicate_keys_in_the_manifest_are_refused(toy_release, edit, message):
    out, _ = toy_release
    path = out / "manifest.json"
    edited = edit(path.read_text())
    assert edited != path.read_text()
    path.write_text(edited)
    with pytest.raises(ValueError, match=message):
        load_instances(out, "toy")


def test_a_pinned_manifest_hash_refuses_any_other_release(toy_release):
    from instdecay.loaders import manifest_sha256

    out, _ = toy_release
    pin = manifest_sha256(out)
    assert load_tensor(out, "toy", "validation", "tiny", manifest_sha256=pin).values.size
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["built_with"] = "someone else"
    (out / "manifest.json").write_text(json.dumps(manifest))
    for load in (lambda: load_tensor(out, "toy", "validation", "tiny", manifest_sha256=pin),
                 lambda: load_predictions(out, "toy", "validation", manifest_sha256=pin),
                 lambda: load_instances(out, "toy", manifest_sha256=pin)):
        with pytest.raises(ValueError, match="not the pinned manifest_sha256"):
            load()
