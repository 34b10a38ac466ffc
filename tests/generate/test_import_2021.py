"""The importer on small fixture folders written in exactly the 2021 release's layout."""

import json

import numpy as np
import pytest

from instdecay.evaluate import decay_bounds
from instdecay.generate.import_2021 import import_2021
from instdecay.loaders import load_instances, load_tensor
from instdecay.release import ShardError, build_release, validate_release

MNLI_LABELS = ["contradiction", "entailment", "neutral"]


def write_task_folder(folder, predict, labels, sizes=("mini", "large"), seeds=(1, 2), finetunes=(1, 2),
                      epochs=(9, 12), rng=None):
    rng = rng or np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.json").write_text(json.dumps({"label_list": labels, "predict": predict}))
    (folder / "results").mkdir(exist_ok=True)
    written = {}
    for s in sizes:
        for p in seeds:
            for f in finetunes:
                for e in epochs:
                    probs = rng.dirichlet(np.ones(len(labels)), len(predict))
                    written[(s, p, f, e)] = probs
                    np.savetxt(folder / "results" / f"s{s}p{p}f{f}epoch{e}over3.tsv", probs, delimiter="\t", fmt="%.8f")
    return written


def mnli_predict():
    items = [{"guid": f"dev_matched-{k}", "text_a": f"premise {k}", "text_b": f"hypothesis {k}",
              "label": MNLI_LABELS[k % 3]} for k in range(12)]
    items += [{"guid": f"hans-{k}", "text_a": f"the doctor saw {k}", "text_b": "the doctor saw",
               "label": ["entailment", "non-entailment"][k % 2]} for k in range(6)]
    return items


def test_mnli_with_a_hans_style_challenge_set(tmp_path):
    predict = mnli_predict()
    written = write_task_folder(tmp_path / "src" / "mnli", predict, MNLI_LABELS)
    assert import_2021(tmp_path / "src" / "mnli", tmp_path / "shards", progress=False) == 8
    build_release(tmp_path / "shards", tmp_path / "out", progress=False)
    assert validate_release(tmp_path / "out") == []

    inst = load_instances(tmp_path / "out", "mnli")
    assert sorted(set(inst["eval_set"])) == ["dev_matched", "hans"]
    assert set(inst["original_split"]) == {"dev_matched", "hans"}
    hans = load_tensor(tmp_path / "out", "mnli", "hans", "large", value="prob_gold")
    probs = written[("large", 2, 1, 12)][12:]
    gold = np.array([p["label"] for p in predict[12:]])
    non_ent = probs[:, 0] + probs[:, 2]
    expected = np.where(gold == "entailment", probs[:, 1], non_ent)
    np.testing.assert_allclose(hans.values[:, 1, 0, 1], expected, atol=5e-4)  # stored at float16 precision
    correct = load_tensor(tmp_path / "out", "mnli", "hans", "large", checkpoints="last")
    argmax_is_ent = probs.argmax(axis=1) == 1
    np.testing.assert_array_equal(correct.values[:, 1, 0], np.where(gold == "entailment", argmax_is_ent, ~argmax_is_ent))
    assert correct.checkpoints.tolist() == [12]
    dm = load_tensor(tmp_path / "out", "mnli", "dev_matched", "mini", checkpoints="last")
    assert decay_bounds(dm.values, load_tensor(tmp_path / "out", "mnli", "dev_matched", "large",
                                               checkpoints="last").values, n_boot=0).n_instances == 12


def test_sst2_folds_are_combined_into_one_run(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "src" / "SST-2"
    for k in range(5):
        predict = [{"guid": f"{'train' if j < 3 else 'dev'}-{10 * k + j}", "text_a": f"sentence {10 * k + j}",
                    "label": str(j % 2)} for j in range(4)]
        write_task_folder(src / f"fold{k}", predict, ["0", "1"], sizes=("mini",), seeds=(1,), finetunes=(1, 2),
                          epochs=(12,), rng=rng)
    assert import_2021(src, tmp_path / "shards", progress=False) == 2
    build_release(tmp_path / "shards", tmp_path / "out", progress=False)
    t = load_tensor(tmp_path / "out", "sst2", "train", "mini")
    assert t.values.shape == (15, 1, 2, 1)  # 3 train-guid instances from each of 5 folds
    assert set(load_instances(tmp_path / "out", "sst2")["eval_set"]) == {"train", "dev"}


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: (d / "results" / "sminip1f1epoch9over3.tsv").write_text("0.5\t0.5\n" * 18),
     r"expected 18 rows x 3 probability columns \(contradiction, entailment, neutral\), found 18 x 2"),
    (lambda d: (d / "results" / "sminip1f1epoch9over3.tsv").write_text("0.5\t0.4\t0.3\n" * 18),
     "row 1: probabilities sum to 1.2, expected 1"),
    (lambda d: (d / "results" / "sminip1f1epoch12over3.tsv").unlink(), None),
    (lambda d: (d / "results" / "mini_p1.tsv").write_text(""), "does not match s<size>p<P>f<F>epoch<E>over3.tsv"),
    (lambda d: (d / "data.json").write_text("{}"), "expected a JSON object with 'label_list' and 'predict'"),
])
def test_bad_input(tmp_path, corrupt, message):
    folder = tmp_path / "mnli"
    write_task_folder(folder, mnli_predict(), MNLI_LABELS)
    corrupt(folder)
    if message is None:  # a missing checkpoint file: the run simply has fewer checkpoints -> grid check names it
        import_2021(folder, tmp_path / "shards", progress=False)
        build_release(tmp_path / "shards", tmp_path / "out", progress=False)
        assert any("missing 1 run(s): mini__p1__f1__c12" in p for p in validate_release(tmp_path / "out"))
        return
    with pytest.raises(ShardError, match=message):
        import_2021(folder, tmp_path / "shards", progress=False)


def test_unknown_gold_label(tmp_path):
    predict = mnli_predict()
    predict[0]["label"] = "maybe"
    write_task_folder(tmp_path / "mnli", predict, MNLI_LABELS)
    with pytest.raises(ShardError, match="gold label 'maybe' is not in label_list"):
        import_2021(tmp_path / "mnli", tmp_path / "shards", progress=False)
