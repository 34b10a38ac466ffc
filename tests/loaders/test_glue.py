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
