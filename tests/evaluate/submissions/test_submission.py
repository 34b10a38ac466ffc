"""Submissions: validation of every kind of bad input, a property test, and the comparison report."""

import json

import numpy as np
import yaml
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instdecay.cli import main
from instdecay.evaluate.reports.compare import compare
from instdecay.evaluate.submissions import SubmissionError, load_submission
from instdecay.loaders.read import read_manifest
from instdecay.loaders import load_predictions
from instdecay.release import build_release


@pytest.fixture(scope="module")
def world(tmp_path_factory, shard_writer):
    """A reference release (sizes tiny, small; 4 x 2 seeds) and a valid submission built from fresh runs."""
    write_toy_shards = shard_writer
    tmp = tmp_path_factory.mktemp("submission_world")
    write_toy_shards(tmp / "ref", n_pretrain=4, n_finetune=2, n_instances=40)
    build_release(tmp / "ref", tmp / "release", progress=False)
    write_toy_shards(tmp / "new", sizes=(("new", 10**6),), n_pretrain=2, n_finetune=2, n_instances=40, seed=7,
                      seed_design="nested")
    build_release(tmp / "new", tmp / "new_release", progress=False, analysis=False)
    df = load_predictions(tmp / "new_release", "toy", "validation", checkpoints=2)
    valid = df[["instance_id", "pretrain_seed", "finetune_seed", "probs"]].reset_index(drop=True)
    return tmp / "release", valid


def _write(tmp_path, df, name="sub.parquet", meta=None):
    path = tmp_path / name
    if "probs" in df.columns:  # plain lists of floats, whatever the test put in
        df = df.assign(probs=[[float(x) for x in np.atleast_1d(v)] if isinstance(v, (list, np.ndarray)) else v
                              for v in df.probs])
    {".parquet": lambda: df.to_parquet(path), ".csv": lambda: df.to_csv(path, index=False),
     ".jsonl": lambda: df.to_json(path, orient="records", lines=True)}[path.suffix]()
    (tmp_path / "submission.yaml").write_text(json.dumps(meta or {"model": "new-model", "split": "validation"}))
    return path


def _problems(path, reference):
    with pytest.raises(SubmissionError) as exc:
        load_submission(path, reference)
    return [str(p) for p in exc.value.problems]


def test_valid_submission_in_each_format(tmp_path, world):
    reference, valid = world
    probs = np.stack(valid["probs"].to_numpy())
    as_columns = valid.drop(columns="probs").assign(prob_a=probs[:, 0], prob_b=probs[:, 1], prob_c=probs[:, 2])
    as_labels = valid.drop(columns="probs").assign(pred=np.array(["a", "b", "c"])[probs.argmax(axis=1)])
    results = []
    for name, df in (("p.parquet", valid), ("c.csv", as_columns), ("l.jsonl", as_labels)):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        results.append(load_submission(_write(folder, df, name), reference))
    for s in results:
        assert s.correct.shape == (20, 2, 2) and s.task == "toy" and s.name == "new-model"
    np.testing.assert_array_equal(results[0].correct, results[1].correct)
    np.testing.assert_array_equal(results[0].correct, results[2].correct)
    assert results[2].prob_gold is None and results[0].prob_gold is not None


@pytest.mark.parametrize("corrupt, expected", [
    (lambda d: d.drop(index=3), "covers 19 of the 20 instances"),
    (lambda d: pd.concat([d, d.iloc[[0]]]), "appears more than once in its run"),
    (lambda d: d.assign(instance_id=d.instance_id.where(d.index != 2, "zzz")), "row 3, field 'instance_id': 'zzz' is not an instance"),
    (lambda d: d.assign(probs=[np.array([0.5, 0.6, 0.1])] + list(d.probs[1:])), "row 1, field 'probs': probabilities must be finite"),
    (lambda d: d.assign(probs=[np.array([0.5, 0.5])] + list(d.probs[1:])), "row 1, field 'probs': expected a list of 3"),
    (lambda d: d.drop(columns="finetune_seed"), "field 'finetune_seed': required column missing"),
    (lambda d: d.assign(finetune_seed=d.finetune_seed.astype(object).where(d.index != 4, "x")), "row 5, field 'finetune_seed': expected an integer"),
    (lambda d: d.drop(columns="probs").assign(pred="maybe"), "field 'pred': 'maybe' is not a label name"),
    (lambda d: d.drop(columns="probs"), "give 'pred'"),
    (lambda d: d[~((d.pretrain_seed == 1) & (d.finetune_seed == 1))], "the seed grid has holes"),
    (lambda d: d.assign(instance_hash="0" * 64), "does not match the reference's hash"),
])
def test_each_kind_of_bad_input(tmp_path, world, corrupt, expected):
    reference, valid = world
    problems = _problems(_write(tmp_path, corrupt(valid.copy()).reset_index(drop=True), "sub.jsonl"), reference)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("sub.jsonl") for p in problems)


def test_cli_validate_lists_first_20_problems_then_a_count(tmp_path, world, capsys):
    reference, valid = world
    bad = valid.assign(instance_id=[f"nope{k}" if k else i for k, i in enumerate(valid.instance_id)])
    path = _write(tmp_path, bad)
    assert main(["submit", "validate", str(path), "--reference", str(reference)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 21
    assert lines[-1] == f"sub.parquet, field 'instance_id': ... and {len(valid) - 21} more row(s) like these"
    assert lines[0] == ("sub.parquet, row 2, field 'instance_id': 'nope1' is not an instance of the reference "
                        "evaluation set 'validation' (ids look like 'i0')")
    everything_wrong = valid.assign(instance_id=[f"validation_matched-{k}" for k in range(len(valid))])
    assert main(["submit", "validate", str(_write(tmp_path, everything_wrong)), "--reference", str(reference)]) == 2
    assert capsys.readouterr().out.strip() == (
        f"sub.parquet, field 'instance_id': none of the {len(valid)} ids is an instance of evaluation set "
        f"'validation' (its ids look like 'i0'; found e.g. 'validation_matched-0'): set 'split' in submission.yaml to "
        f"the evaluation set the predictions are for")


def test_cli_validate_ok_and_metadata_flags(tmp_path, world, capsys):
    reference, valid = world
    path = _write(tmp_path, valid, meta={})
    assert main(["submit", "validate", str(path), "--reference", str(reference), "--split", "validation",
                 "--model", "flagged"]) == 0
    assert "valid — flagged, task toy, split validation, 2 x 2 runs on 20 instances" in capsys.readouterr().out


def test_size_limit_and_unsupported_files(tmp_path, world):
    reference, valid = world
    path = _write(tmp_path, valid)
    with pytest.raises(ValueError, match="over the 0 MiB limit"):
        load_submission(path, reference, max_bytes=10)
    pickle_like = tmp_path / "x.pkl"
    pickle_like.write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="no .parquet, .csv or .jsonl prediction files"):
        load_submission(tmp_path / "only_pickle", reference) if False else load_submission(_only(tmp_path, pickle_like), reference)


def _only(tmp_path, file):
    folder = tmp_path / "only_pickle"
    folder.mkdir()
    file.rename(folder / file.name)
    return folder


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_corruptions_never_crash_and_never_pass_silently(tmp_path_factory, world, data):
    reference, valid = world
    df = valid.copy()
    row = data.draw(st.integers(0, len(df) - 1))
    column = data.draw(st.sampled_from(["instance_id", "pretrain_seed", "finetune_seed", "probs"]))
    value = data.draw(st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                                st.text(max_size=5), st.lists(st.floats(0, 1), max_size=4)))
    cell = df.at[row, column]
    df[column] = df[column].astype(object)
    df.at[row, column] = value
    folder = tmp_path_factory.mktemp("prop")
    path = _write(folder, df, "sub.jsonl")
    changed = not _same(cell, value)
    try:
        sub = load_submission(path, reference)
    except SubmissionError as exc:
        assert exc.problems  # rejected with problems named, not a crash
        return
    # Accepted: only when the content is effectively unchanged.
    assert not changed or column == "probs" and sub.correct.shape == (20, 2, 2)


def _same(cell, value) -> bool:
    if isinstance(cell, np.ndarray):
        return isinstance(value, list) and len(value) == len(cell) and np.allclose(value, cell, atol=1e-3)
    try:
        return bool(cell == value) or str(cell) == str(value)
    except (TypeError, ValueError):
        return False


def test_comparison_report(tmp_path, world, capsys):
    reference, valid = world
    path = _write(tmp_path, valid)
    assert main(["evaluate", str(path), "--reference", str(reference), "--out", str(tmp_path / "out"),
                 "--n-boot", "100"]) == 0
    printed = capsys.readouterr().out
    assert "new-model on toy / validation" in printed and "versus each reference size" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["reference"] for r in report["versus"]] == ["tiny", "small"]
    assert {"decay", "decay_lcb", "decay_lcb_rigorous", "improve_lcb", "design", "position", "noise_submission"} <= set(report["versus"][0])
    assert report["variance"]["decomposition"]["finetune_var"] is not None
    assert (tmp_path / "out" / "ecdf.png").exists() and (tmp_path / "out" / "accuracy_by_size.png").exists()


def test_single_run_explains_what_cannot_be_said(tmp_path, world):
    reference, valid = world
    one = valid[(valid.pretrain_seed == 0) & (valid.finetune_seed == 0)].reset_index(drop=True)
    sub = load_submission(_write(tmp_path, one), reference)
    c = compare(sub, reference, n_boot=50)
    assert "decay" not in c.versus.columns and "need >= 2 runs" in c.notes[0]
    assert c.accuracy.iloc[0]["ci_low"] <= c.accuracy.iloc[0]["accuracy"] <= c.accuracy.iloc[0]["ci_high"]


def test_one_pretrained_checkpoint_says_finetuning_noise_only(tmp_path, world):
    reference, valid = world
    one_p = valid[valid.pretrain_seed == 0].reset_index(drop=True)
    c = compare(load_submission(_write(tmp_path, one_p), reference), reference, n_boot=50)
    assert "finetuning noise only" in c.notes[0]
    assert c.versus.iloc[0]["noise_submission"].startswith("finetuning seeds only")
    assert "finetune_var" in c.variance


def test_per_run_csv_import(tmp_path, world):
    reference, valid = world
    for (p, f), run in valid.groupby(["pretrain_seed", "finetune_seed"]):
        probs = np.stack(run["probs"].to_numpy())
        pd.DataFrame({"instance_id": run["instance_id"], "pred": np.array(["a", "b", "c"])[probs.argmax(axis=1)]}) \
            .to_csv(tmp_path / f"run-pseed{p}-fseed{f}.csv", index=False)
    assert main(["submit", "import-csv", *map(str, sorted(tmp_path.glob("run-*.csv"))), "--task", "toy",
                 "--split", "validation", "--model", "csv-model", "--out", str(tmp_path / "sub"),
                 "--reference", str(reference)]) == 0
    sub = load_submission(tmp_path / "sub", reference)  # submission.yaml written: nothing to add by hand
    assert sub.name == "csv-model" and sub.correct.shape == (20, 2, 2) and sub.pretrain_seeds.tolist() == [0, 1]


def test_csv_import_refuses_files_without_predictions_or_seeds(tmp_path, world):
    from instdecay.evaluate.submissions.importers import import_run_csvs

    reference, _ = world
    kw = dict(task="toy", split="validation")
    pd.DataFrame({"instance_id": ["i0"], "score": [0.3]}).to_csv(tmp_path / "a-seed0.csv", index=False)
    with pytest.raises(ValueError, match="no predictions"):
        import_run_csvs([tmp_path / "a-seed0.csv"], tmp_path / "sub", reference, **kw)
    pd.DataFrame({"instance_id": ["i0"], "pred": ["a"]}).to_csv(tmp_path / "model_p3_bf16.csv", index=False)
    with pytest.raises(ValueError, match="cannot tell its seeds"):
        import_run_csvs([tmp_path / "model_p3_bf16.csv"], tmp_path / "sub", reference, **kw)


@pytest.mark.parametrize("flags, expected", [
    (["--task", "SST-2", "--split", "validation"], "the task must be one of ['toy']"),
    (["--task", "toy", "--split", "dev"], "the split (evaluation set) must be one of"),
    (["--task", "toy", "--split", "validaton"], "did you mean 'validation'?"),
])
def test_csv_import_runs_the_validate_checks_before_writing(tmp_path, world, capsys, flags, expected):
    reference, valid = world
    run = valid[(valid.pretrain_seed == 0) & (valid.finetune_seed == 0)]
    probs = np.stack(run["probs"].to_numpy())
    pd.DataFrame({"instance_id": run["instance_id"], "pred": np.array(["a", "b", "c"])[probs.argmax(axis=1)]}) \
        .to_csv(tmp_path / "bert-seed0.csv", index=False)
    code = main(["submit", "import-csv", str(tmp_path / "bert-seed0.csv"), *flags, "--out", str(tmp_path / "sub"),
                 "--reference", str(reference)])
    captured = capsys.readouterr()
    assert code == 2 and expected in captured.out + captured.err
    assert not (tmp_path / "sub" / "predictions.parquet").exists()


def test_csv_import_names_the_model_from_its_files_and_checks_ids(tmp_path, world, capsys):
    reference, valid = world
    for f in (0, 1):
        run = valid[(valid.pretrain_seed == 0) & (valid.finetune_seed == f)]
        probs = np.stack(run["probs"].to_numpy())
        pd.DataFrame({"instance_id": run["instance_id"], "prob_A": probs[:, 0], "prob_B": probs[:, 1],
                      "prob_C": probs[:, 2]}).to_csv(tmp_path / f"bert-seed{f}.csv", index=False)
    assert main(["submit", "import-csv", str(tmp_path / "bert-seed0.csv"), str(tmp_path / "bert-seed1.csv"), "--task",
                 "toy", "--split", "validation", "--out", str(tmp_path / "sub"), "--reference", str(reference)]) == 0
    assert load_submission(tmp_path / "sub", reference).name == "bert"  # prob_<LABEL> matched whatever the case
    run = valid[(valid.pretrain_seed == 0) & (valid.finetune_seed == 0)]
    pd.DataFrame({"instance_id": [i[1:] for i in run["instance_id"]], "pred": "a"}).to_csv(tmp_path / "ids-seed0.csv",
                                                                                        index=False)
    assert main(["submit", "import-csv", str(tmp_path / "ids-seed0.csv"), "--task", "toy", "--split", "validation",
                 "--out", str(tmp_path / "sub2"), "--reference", str(reference)]) == 2
    assert "these look like row numbers; write the reference's ids (like 'i0'" in capsys.readouterr().out


def test_metadata_messages_teach_the_fix(tmp_path, world):
    reference, valid = world
    path = _write(tmp_path, valid)
    (tmp_path / "submission.yaml").unlink()
    with pytest.raises(ValueError, match=r"there is no submission.yaml: write one .* or pass --task, --split and "
                                         r"--model"):
        load_submission(path, reference)
    (tmp_path / "submission.yaml").write_text("model: m\nsplit: validation\nparms: 10\n")
    with pytest.raises(ValueError, match=r"unknown metadata field\(s\) 'parms' \(did you mean 'params'\?\)"):
        load_submission(path, reference)
    (tmp_path / "submission.yaml").write_text("model: m\nsplit: validation\nparams: 1e6\ntraining_data: toy pool\n")
    sub = load_submission(path, reference)
    assert sub.metadata["params"] == 1_000_000 and sub.metadata["training_data"] == "toy pool"


def test_label_names_match_whatever_the_case(tmp_path, world):
    reference, valid = world
    labels = np.array(["A", "b", "C"])[[int(np.argmax(v)) for v in valid.probs]]
    sub = load_submission(_write(tmp_path, valid.drop(columns="probs").assign(pred=labels)), reference)
    expected = load_submission(_write(tmp_path, valid), reference)
    np.testing.assert_array_equal(sub.correct, expected.correct)


def test_a_copy_of_a_reference_size_is_refused(tmp_path, world, capsys):
    reference, _ = world
    out = tmp_path / "sub"
    assert main(["submit", "from-release", str(reference), "--task", "toy", "--split", "validation",
                 "--size", "small", "--out", str(out), "--reference", str(reference)]) == 2
    printed = capsys.readouterr().out
    assert "is identical at float16 precision to reference run small__p0__f0__c2" in printed
    assert "nothing was written" in printed and not (out / "predictions.parquet").exists()


def test_from_release_carries_the_seed_design_and_takes_metadata_flags(tmp_path, world, capsys):
    reference, _ = world
    out = tmp_path / "sub"
    assert main(["submit", "from-release", str(reference.parent / "new_release"), "--task", "toy", "--split",
                 "validation", "--size", "new", "--out", str(out), "--reference", str(reference),
                 "--training-data", "toy pool rows", "--model", "my-new"]) == 0
    meta = yaml.safe_load((out / "submission.yaml").read_text())
    assert read_manifest(reference.parent / "new_release")["tasks"]["toy"]["seed_design"] == "nested"
    assert meta["seed_design"] == "nested"
    assert meta["training_data"] == "toy pool rows" and meta["model"] == "my-new" and meta["params"] == 10**6


def test_duplicated_runs_are_refused(tmp_path, world):
    reference, valid = world
    first = valid[(valid.pretrain_seed == 0) & (valid.finetune_seed == 0)]
    copies = pd.concat([first.assign(finetune_seed=f) for f in range(4)], ignore_index=True)
    with pytest.raises(SubmissionError, match=r"run \(pretrain_seed=0, finetune_seed=1\) is identical at float16 "
                                              r"precision to run \(pretrain_seed=0, finetune_seed=0\)"):
        load_submission(_write(tmp_path, copies), reference)
    labels_only = copies.assign(pred=[int(np.argmax(v)) for v in copies.probs]).drop(columns="probs")
    with pytest.raises(SubmissionError, match="is identical to run"):
        load_submission(_write(tmp_path, labels_only), reference)


def test_pred_and_probs_that_disagree_are_refused(tmp_path, world):
    reference, valid = world
    df = valid.assign(pred=[int(np.argmax(v)) for v in valid.probs])
    assert load_submission(_write(tmp_path, df), reference).correct.shape == (20, 2, 2)
    df.loc[3, "pred"] = (df.loc[3, "pred"] + 1) % 3
    with pytest.raises(SubmissionError, match=r"row 4, field 'pred': .* disagrees with probs"):
        load_submission(_write(tmp_path, df), reference)


def test_positions_come_from_intervals(tmp_path, world):
    reference, valid = world
    c = compare(load_submission(_write(tmp_path, valid), reference), reference, n_boot=50)
    for row in c.versus.itertuples():
        expected = "above" if row.delta_ci_low > 0 else "below" if row.delta_ci_high < 0 else "indistinguishable"
        assert row.position == expected
    # random 3-class toy models: no size is distinguishable from the submission
    assert c.accuracy.iloc[0]["ladder_position"] == "indistinguishable from tiny, small"
