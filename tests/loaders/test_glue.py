import pandas as pd
import pytest

from instdecay.loaders import schema
from instdecay.loaders.glue import join_glue_text


def _glue(tmp_path, train_rows, dev_rows):
    (tmp_path / "sst2").mkdir()
    for name, rows in (("train.tsv", train_rows), ("dev.tsv", dev_rows)):
        (tmp_path / "sst2" / name).write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    return tmp_path


def _instances(items):
    return pd.DataFrame([{"instance_id": f"{split}-{i}", "original_split": split, "original_id": str(i),
                          "text_a": None, "text_b": None, "label_name": lab,
                          "instance_hash": schema.instance_hash(text, None, lab)} for split, i, text, lab in items])


def test_join_fills_text_and_checks_hashes(tmp_path):
    glue = _glue(tmp_path, [("a fine film ", 1), ('say "no" ', 0)], [("dull ", 0)])
    inst = _instances([("train", 1, 'say "no" ', "negative"), ("validation", 0, "dull ", "negative")])
    out = join_glue_text(inst, glue, "sst2")
    assert out["text_a"].tolist() == ['say "no" ', "dull "]  # quoting off: the literal quotes survive


def test_join_rejects_a_different_copy(tmp_path):
    glue = _glue(tmp_path, [("a fine film ", 1)], [("dull ", 0)])
    inst = _instances([("train", 0, "a different film ", "positive")])
    with pytest.raises(ValueError, match="does not match its instance_hash"):
        join_glue_text(inst, glue, "sst2")


def test_join_names_a_missing_file(tmp_path):
    inst = _instances([("train", 0, "x", "positive")])
    with pytest.raises(ValueError, match="sst2/train.tsv: GLUE file not found"):
        join_glue_text(inst, tmp_path, "sst2")


def _hub_copy(tmp_path, splits):
    """A local copy in the nyu-mll/glue parquet layout: <root>/sst2/<split>-00000-of-00001.parquet."""
    (tmp_path / "hub" / "sst2").mkdir(parents=True)
    for split, rows in splits.items():
        pd.DataFrame({"sentence": [s for s, _ in rows], "label": [y for _, y in rows],
                      "idx": range(len(rows))}).to_parquet(tmp_path / "hub" / "sst2" / f"{split}-00000-of-00001.parquet")
    return tmp_path / "hub"


def test_text_from_the_hub_layout_is_joined_and_checked(tmp_path, monkeypatch):
    from instdecay.loaders.glue import join_hub_text

    hub = _hub_copy(tmp_path, {"train": [("a fine film ", 1), ('say "no" ', 0)], "validation": [("dull ", 0)]})
    inst = _instances([("train", 1, 'say "no" ', "negative"), ("validation", 0, "dull ", "negative")])
    assert join_hub_text(inst, hub, "sst2")["text_a"].tolist() == ['say "no" ', "dull "]
    calls = {}

    def fake_download(repo_id, **kw):  # a Hub id: only the needed files are fetched (offline: a local copy)
        calls.update(kw, repo_id=repo_id)
        return str(hub)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    assert join_hub_text(inst, "nyu-mll/glue", "sst2")["text_a"].tolist() == ['say "no" ', "dull "]
    assert calls["repo_id"] == "nyu-mll/glue" and sorted(calls["allow_patterns"]) == ["sst2/train-*.parquet",
                                                                                     "sst2/validation-*.parquet"]
    wrong = _instances([("train", 0, "a different film ", "positive")])
    with pytest.raises(ValueError, match="does not match its instance_hash"):
        join_hub_text(wrong, hub, "sst2")


def test_text_from_the_hub_offline_is_one_clear_error(tmp_path):
    from instdecay.loaders.glue import join_hub_text

    with pytest.raises(ValueError, match="text not available"):
        join_hub_text(_instances([("train", 0, "x", "positive")]), "nyu-mll/glue", "sst2")  # HF_HUB_OFFLINE=1
