"""lm-evaluation-harness import: files laid out as the harness writes them (--log_samples), checked faithfully."""

import json

import numpy as np
import pytest
import yaml

from instdecay.cli import main
from instdecay.evaluate.submissions.lm_eval import import_lm_eval, normalise
from instdecay.evaluate.submissions import load_submission
from instdecay.loaders import load_instances

STAMP = "2026-11-20T10-11-12.123456"


@pytest.fixture(scope="module")
def reference(toy_reference):
    return toy_reference


def harness_run(root, reference, model_dir, seed, *, choices=("a", "b", "c"), filters=("none",), shuffle=False,
                generate=False, delimiter=" ", label_of=None):
    """One model folder: samples_toy_<ts>.jsonl and results_<ts>.json, as the harness writes them. Returns the
    harness's own accuracy (argmax of the log-likelihoods against the target)."""
    inst = load_instances(reference, "toy", "validation")
    rng = np.random.default_rng(seed)
    folder = root / model_dir
    folder.mkdir(parents=True)
    rows = np.arange(len(inst))
    docs_at = rng.permutation(rows) if shuffle else rows  # shuffle: doc_id k holds another instance's document
    lines, hits = [], []
    for doc_id in rows:
        row = inst.iloc[docs_at[doc_id]]
        gold_choice = [(label_of or {}).get(c, c) for c in choices].index(row["label_name"])
        ll = np.log(rng.dirichlet(np.ones(len(choices)) * 0.7))
        ll[gold_choice] += 0.8
        hits.append(int(np.argmax(ll) == gold_choice))
        for name in filters:
            record = {"doc_id": int(row_id(inst, doc_id)), "doc": {"text": row["text_a"], "label": int(row["label"])},
                      "target": str(gold_choice), "filter": name, "metrics": ["acc"], "acc": float(hits[-1]),
                      "doc_hash": "x", "prompt_hash": "y", "target_hash": "z"}
            if generate:
                record["arguments"] = {"gen_args_0": {"arg_0": f"{row['text_a']}\nAnswer:", "arg_1": {"until": ["\n"]}}}
                record["filtered_resps"] = [f" {choices[int(np.argmax(ll))].upper()}."]
                record["target"] = row["label_name"]
            else:
                record["arguments"] = {f"gen_args_{k}": {"arg_0": f"{row['text_a']}\nAnswer:", "arg_1": f"{delimiter}{c}"}
                                       for k, c in enumerate(choices)}
                record["filtered_resps"] = [[str(v), "False"] for v in ll]
                record["resps"] = [[[str(v), "False"]] for v in ll]
            lines.append(json.dumps(record))
    (folder / f"samples_toy_{STAMP}.jsonl").write_text("\n".join(lines) + "\n")
    results = {"results": {"toy": {"acc,none": float(np.mean(hits))}}, "versions": {"toy": 1.0}, "n-shot": {"toy": 0},
               "configs": {"toy": {"task": "toy", "target_delimiter": delimiter}},
               "config": {"model": "hf", "model_args": f"pretrained=org/{model_dir}", "model_num_parameters": 123456,
                          "model_revision": "main", "model_sha": f"sha{seed}"},
               "model_name": f"org/{model_dir.split('__', 1)[1]}", "lm_eval_version": "0.4.99", "git_hash": "abc123"}
    (folder / f"results_{STAMP}.json").write_text(json.dumps(results))
    return float(np.mean(hits))


def row_id(inst, k):
    return int(inst["instance_id"].iloc[k][1:])


def _import(root, reference, out, **kw):
    kw.setdefault("doc_fields", ["text"])
    kw.setdefault("id_template", "i{doc_id}")
    return import_lm_eval([root], out, reference, task="toy", split="validation", **kw)


def test_choices_in_another_order_keep_their_labels_and_metadata_is_recorded(tmp_path, reference):
    harness_acc = [harness_run(tmp_path / "out", reference, f"org__bert-seed{k}", k, choices=("c", "a", "b"))
                   for k in (0, 1)]
    sub = load_submission(_import(tmp_path / "out", reference, tmp_path / "sub"), reference)
    np.testing.assert_allclose(sub.correct.mean(axis=0)[0], harness_acc)  # the harness's own acc, per run
    meta = yaml.safe_load((tmp_path / "sub" / "submission.yaml").read_text())
    assert meta["model"] == "org/bert" and meta["task"] == "toy" and meta["split"] == "validation"
    assert meta["params"] == 123456 and meta["source"]["metric"] == "acc" and meta["source"]["filter"] == "none"
    assert [(r["finetune_seed"], r["model_sha"], r["num_fewshot"], r["task_version"], r["harness_version"])
            for r in meta["runs"]] == [(0, "sha0", 0, 1.0, "0.4.99"), (1, "sha1", 0, 1.0, "0.4.99")]


def test_labels_flag_maps_names_and_is_checked_against_the_choices(tmp_path, reference):
    acc = harness_run(tmp_path / "out", reference, "org__m-seed0", 0, choices=("c", "a", "b"))
    with pytest.raises(ValueError, match="choice 'c' is itself the label 'c'"):
        _import(tmp_path / "out", reference, tmp_path / "sub", labels="a,b,c")
    sub = load_submission(_import(tmp_path / "out", reference, tmp_path / "sub", labels="c,a,b"), reference)
    assert sub.correct.mean() == pytest.approx(acc)
    renamed = tmp_path / "renamed"
    acc2 = harness_run(renamed, reference, "org__m-seed0", 3, choices=("A!", "Bee", "c"), label_of={"Bee": "b", "A!": "a"})
    with pytest.raises(ValueError, match="not a label of the reference"):
        _import(renamed, reference, tmp_path / "sub2")
    sub = load_submission(_import(renamed, reference, tmp_path / "sub2", labels="bee=b,a=a,c=c"), reference)
    assert sub.correct.mean() == pytest.approx(acc2)


def test_documents_in_another_order_are_refused_or_realigned(tmp_path, reference):
    acc = harness_run(tmp_path / "out", reference, "org__m-seed0", 0, shuffle=True)
    with pytest.raises(ValueError, match=r"of 20 samples are not the reference's instance at their doc_id.*--realign"):
        _import(tmp_path / "out", reference, tmp_path / "sub")
    sub = load_submission(_import(tmp_path / "out", reference, tmp_path / "sub", realign=True), reference)
    assert sub.correct.mean() == pytest.approx(acc)


def test_seeds_come_from_folder_names_never_from_stray_digits(tmp_path, reference):
    for k in (1, 10, 2):
        harness_run(tmp_path / "out", reference, f"org__m-seed{k}", k)
    sub = load_submission(_import(tmp_path / "out", reference, tmp_path / "sub"), reference)
    assert sub.pretrain_seeds.tolist() == [0] and sub.finetune_seeds.tolist() == [1, 2, 10]
    odd = tmp_path / "odd"
    harness_run(odd, reference, "org__m-p3_bf16", 0)
    with pytest.raises(ValueError, match="cannot tell its seeds from the model folder name 'org__m-p3_bf16'"):
        _import(odd, reference, tmp_path / "sub2")
    sub = load_submission(_import(odd, reference, tmp_path / "sub2", pretrain_seed=3, finetune_seed=0), reference)
    assert sub.pretrain_seeds.tolist() == [3]
    both = tmp_path / "both"
    harness_run(both, reference, "org__m-pseed1-fseed4", 0)
    assert load_submission(_import(both, reference, tmp_path / "sub3"), reference).finetune_seeds.tolist() == [4]


def test_filters_generated_answers_and_acc_norm(tmp_path, reference):
    harness_run(tmp_path / "two", reference, "org__m-seed0", 0, filters=("none", "strict"))
    with pytest.raises(ValueError, match=r"several filters \['none', 'strict'\]; choose one with --filter"):
        _import(tmp_path / "two", reference, tmp_path / "s1")
    assert load_submission(_import(tmp_path / "two", reference, tmp_path / "s1", filter_name="strict"),
                           reference).correct.shape == (20, 1, 1)
    acc = harness_run(tmp_path / "gen", reference, "org__m-seed0", 5, generate=True)
    sub = load_submission(_import(tmp_path / "gen", reference, tmp_path / "s2"), reference)
    assert normalise(" Negative. ") == "negative" and sub.correct.mean() == pytest.approx(acc)
    # acc_norm: argmax of log-likelihood per character of the choice (without the target delimiter)
    harness_run(tmp_path / "norm", reference, "org__m-seed0", 6, choices=("a", "bbbb", "c"), label_of={"bbbb": "b"})
    with pytest.raises(ValueError, match="not a label"):
        _import(tmp_path / "norm", reference, tmp_path / "s3", metric="acc_norm")
    sub = load_submission(_import(tmp_path / "norm", reference, tmp_path / "s3", metric="acc_norm",
                                  labels="a=a,bbbb=b,c=c"), reference)
    lines = [json.loads(x) for x in next((tmp_path / "norm").rglob("samples_*")).read_text().splitlines()]
    inst = load_instances(reference, "toy", "validation")
    expected = [int(np.argmax(np.array([float(r[0]) for r in x["filtered_resps"]]) / [1, 4, 1]) == int(x["target"]))
                for x in lines]
    np.testing.assert_array_equal(sub.correct[:, 0, 0], expected)
    assert len(inst) == 20


def test_cli_and_a_hub_details_dataset(tmp_path, reference, monkeypatch, capsys):
    harness_run(tmp_path / "details", reference, "org__m-seed0", 0)
    calls = {}

    def fake_download(repo_id, **kw):
        calls.update(kw, repo_id=repo_id)
        return str(tmp_path / "details")

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    assert main(["submit", "import-lm-eval", "someone/details_m", "--task", "toy", "--split", "validation",
                 "--doc-fields", "text", "--id-template", "i{doc_id}", "--reference", str(reference),
                 "--out", str(tmp_path / "sub"), "--contact", "me@example.org"]) == 0
    assert calls["repo_id"] == "someone/details_m" and calls["repo_type"] == "dataset"
    assert calls["allow_patterns"] == ["**samples_toy_*.jsonl", "**results_*.json"]
    assert "checked against the reference" in capsys.readouterr().out
    assert main(["submit", "validate", str(tmp_path / "sub"), "--reference", str(reference)]) == 0
    assert yaml.safe_load((tmp_path / "sub" / "submission.yaml").read_text())["contact"] == "me@example.org"


# ---------------------------------------------------------------- hostile harness output and CSVs
# Each case runs `instdecay submit import-lm-eval` (or import-csv) in a child process under a 4 GiB address-space
# limit and a 60 s timeout: exit 2, one short message, no traceback, nothing written outside --out.

def _edit_samples(folder, edit):
    path = next(folder.rglob("samples_*.jsonl"))
    records = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("\n".join(edit(records)) + "\n")


def _edit_results(folder, edit):
    path = next(folder.rglob("results_*.json"))
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw) if not isinstance(raw, str) else raw)


def _loglik(value):
    def edit(records):
        records[0]["filtered_resps"][0] = [value, "False"]
        return [json.dumps(r) for r in records]
    return edit


def _raw_loglik(text):
    def edit(records):
        line = json.dumps(records[0])
        first = json.dumps(records[0]["filtered_resps"][0][0])
        return [line.replace(first, text, 1)] + [json.dumps(r) for r in records[1:]]
    return edit


HOSTILE = {
    "huge-integer-loglik": (lambda f: _edit_samples(f, _raw_loglik("1" + "0" * 400)), [], "log-likelihood"),
    "boolean-loglik": (lambda f: _edit_samples(f, _loglik(True)), [], "not log-likelihoods"),
    "nan-loglik": (lambda f: _edit_samples(f, _loglik("nan")), [], "finite number"),
    "inf-loglik": (lambda f: _edit_samples(f, _raw_loglik("Infinity")), [], "finite number"),
    "params-1e400": (lambda f: _edit_results(f, lambda r: r["config"].update(model_num_parameters=float("inf"))), [],
                     "model_num_parameters"),
    "params-list": (lambda f: _edit_results(f, lambda r: r["config"].update(model_num_parameters=[1, 2])), [],
                    "model_num_parameters"),
    "params-true": (lambda f: _edit_results(f, lambda r: r["config"].update(model_num_parameters=True)), [],
                    "model_num_parameters"),
    "params-3.7": (lambda f: _edit_results(f, lambda r: r["config"].update(model_num_parameters=3.7)), [],
                   "model_num_parameters"),
    "model-name-dict": (lambda f: _edit_results(f, lambda r: r.update(model_name={"a": 1})), [], "model_name"),
    "deep-version": (lambda f: _edit_results(f, lambda r: r.update(lm_eval_version=json.loads("[" * 900 + "]" * 900))),
                     [], "lm_eval_version"),
    "huge-seed-folder": (lambda f: (f / "org__m-seed0").rename(f / ("org__m-seed" + "9" * 23)), [], "a seed must be"),
    "id-template-empty": (None, ["--id-template", "{}"], "--id-template"),
    "id-template-index": (None, ["--id-template", "{0}"], "--id-template"),
    "id-template-attribute": (None, ["--id-template", "{doc_id.__class__}"], "--id-template"),
    "id-template-width": (None, ["--id-template", "{doc_id:>200000000}"], "--id-template"),
}


@pytest.fixture
def harness_folder(tmp_path, reference):
    harness_run(tmp_path / "out", reference, "org__m-seed0", 0)
    return tmp_path / "out"


def _hostile_run(args, reference, out):
    import resource
    import subprocess
    import sys

    code = ("import sys; from instdecay.cli import main; "
            f"sys.exit(main({['submit', *args, '--reference', str(reference), '--out', str(out)]!r}))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTEST_CURRENT_TEST"}
    limits = lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # noqa: E731
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                       preexec_fn=limits)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_harness_output_is_one_line_error(tmp_path, reference, harness_folder, case):
    prepare, extra, expected = HOSTILE[case]
    if prepare:
        prepare(harness_folder)
    args = ["import-lm-eval", str(harness_folder), "--task", "toy", "--split", "validation", "--doc-fields", "text"]
    if "--id-template" not in extra:
        args += ["--id-template", "i{doc_id}"]
    code, out = _hostile_run(args + extra, reference, tmp_path / "sub")
    assert code == 2 and "Traceback" not in out and len(out) < 3000, out
    assert expected in out, out
    assert not (tmp_path / "sub" / "predictions.parquet").exists()


def test_a_samples_file_with_millions_of_tiny_records_is_refused_before_parsing(tmp_path, reference, harness_folder):
    path = next(harness_folder.rglob("samples_*.jsonl"))
    path.write_text('{"doc_id": 0}\n' * 3_000_000)
    code, out = _hostile_run(["import-lm-eval", str(harness_folder), "--task", "toy", "--split", "validation",
                              "--doc-fields", "text", "--id-template", "i{doc_id}"], reference, tmp_path / "sub")
    assert code == 2 and "more than 1,000 records" in out, out


@pytest.mark.parametrize("content, expected", [
    ("m-seed0:\n  pretrain_seed: 0\n  finetune_seed: 100000000000000000000000\n", "a seed must be"),
    ("m-seed0: {pretrain_seed: true, finetune_seed: false}\n", "a seed must be"),
    ("m-seed0: {finetune_seed: 1}\nm-seed0: {finetune_seed: 2}\n", "more than once"),
    ("m-seed0: " + "{a: " * 40 + "1" + "}" * 40 + "\n", "nested deeper"),
])
def test_hostile_seed_maps(tmp_path, reference, harness_folder, content, expected):
    (tmp_path / "map.yaml").write_text(content)
    code, out = _hostile_run(["import-lm-eval", str(harness_folder), "--task", "toy", "--split", "validation",
                              "--doc-fields", "text", "--id-template", "i{doc_id}", "--seed-map",
                              str(tmp_path / "map.yaml")], reference, tmp_path / "sub")
    assert code == 2 and "Traceback" not in out and expected in out, out


def test_out_through_a_symlinked_folder_is_refused(tmp_path, reference, harness_folder):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "predictions.parquet").write_text("my own file")
    (tmp_path / "link").symlink_to(mine)
    code, out = _hostile_run(["import-lm-eval", str(harness_folder), "--task", "toy", "--split", "validation",
                              "--doc-fields", "text", "--id-template", "i{doc_id}"], reference, tmp_path / "link")
    assert code == 2 and "symbolic link" in out, out
    assert (mine / "predictions.parquet").read_text() == "my own file"


def _csv_rows(reference):
    ids = load_instances(reference, "toy", "validation")["instance_id"].tolist()
    return "instance_id,pred\n" + "".join(f"{i},a\n" for i in ids)


@pytest.mark.parametrize("name, content, expected", [
    ("bert-seed" + "1" * 28 + ".csv", None, "a seed must be"),
    ("bert-seed0.csv", "instance_id,pred,instance_id\ni0,a,i1\n", "appear more than once"),
])
def test_hostile_csv_imports(tmp_path, reference, name, content, expected):
    path = tmp_path / name
    path.write_text(content or _csv_rows(reference))
    code, out = _hostile_run(["import-csv", str(path), "--task", "toy", "--split", "validation", "--model", "m"],
                             reference, tmp_path / "sub")
    assert code == 2 and "Traceback" not in out and expected in out, out
