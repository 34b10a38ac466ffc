"""Hostile submissions: every case runs `instdecay submit validate` in a child process under a 4 GiB address-space
limit and a 60 s timeout, and must end with exit code 2, a short message, no traceback, no leaked file content,
and a peak resident memory below 1 GiB."""

import json
import os
import resource
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SECRET = "SECRET_TOKEN_do_not_print_42"
META = "model: hostile\ntask: toy\nsplit: validation\n"


@pytest.fixture(scope="module")
def reference(toy_reference):
    return toy_reference


@pytest.fixture
def valid_rows(reference):
    from instdecay.loaders import load_instances

    ids = load_instances(reference, "toy", "validation")["instance_id"].tolist()
    rng = np.random.default_rng(0)
    return pd.DataFrame({"instance_id": ids * 2, "finetune_seed": [0] * len(ids) + [1] * len(ids),
                         "pred": rng.choice(["a", "b", "c"], 2 * len(ids))})


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def _child_env() -> dict:
    """The test's environment for the child, less pytest's per-test variable (it holds the test id)."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}, "HF_HUB_OFFLINE": "1"}


def validate(folder, reference):
    """Run validate in a child process; return (exit code, output, peak RSS in MiB of this child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    code = (f"import sys; from instdecay.cli import main; "
            f"sys.exit(main(['submit', 'validate', {str(folder)!r}, '--reference', {str(reference)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], preexec_fn=_limits, capture_output=True, text=True, timeout=60,
                       env=_child_env())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return r.returncode, r.stdout + r.stderr, (peak if peak > before else 0) / 1024


def assert_refused(folder, reference, *expected):
    code, out, peak_mib = validate(folder, reference)
    assert code == 2, out
    assert "Traceback" not in out and SECRET not in out and len(out) < 5000, out
    assert peak_mib < 1024, peak_mib
    for text in expected:
        assert text in out, out


def make(tmp_path, name="sub", meta=META):
    folder = tmp_path / name
    folder.mkdir()
    if meta is not None:
        (folder / "submission.yaml").write_text(meta)
    return folder


def secret_file(tmp_path):
    path = tmp_path / "environ"
    path.write_text(f"HOME=/root\n{SECRET}=1\n")
    return path


@pytest.mark.parametrize("target", ["secret", "/dev/zero", "/dev/urandom"])
def test_symlinks_out_of_the_folder_are_not_followed(tmp_path, reference, target):
    folder = make(tmp_path)
    (folder / "a.csv").symlink_to(secret_file(tmp_path) if target == "secret" else target)
    assert_refused(folder, reference, "a.csv", "outside the submission folder")


def test_fifo_devices_folders_and_broken_links_are_refused(tmp_path, reference):
    folder = make(tmp_path)
    os.mkfifo(folder / "p.csv")
    (folder / "sub.csv").mkdir()
    (folder / "more.parquet").mkdir()
    (folder / "dangling.jsonl").symlink_to(tmp_path / "nowhere")
    (folder / "loop.csv").symlink_to(folder / "loop.csv")
    assert_refused(folder, reference, "p.csv", "not a regular file", "sub.csv", "a folder, not a file",
                   "more.parquet", "dangling.jsonl", "broken or looping")


def test_empty_folder(tmp_path, reference):
    assert_refused(make(tmp_path), reference, "no .parquet, .csv or .jsonl prediction files")


def test_hidden_files_add_no_runs(tmp_path, reference, valid_rows):
    folder = make(tmp_path)
    valid_rows.to_csv(folder / "runs.csv", index=False)
    valid_rows.assign(finetune_seed=7).to_csv(folder / ".extra.csv", index=False)
    code, out, _ = validate(folder, reference)
    assert code == 0 and "1 x 2 runs" in out, out


@pytest.mark.parametrize("meta, expected", [
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "aliases"),
    (META + "url: &u https://example.org\ncontact: *u\n", "aliases"),
    (META + "params: .inf\n", "'params' must be a whole number"),
    (META + "model2: x\n", "unknown metadata field"),
    ("model: " + "x" * 300 + "\ntask: toy\n", "must be text of 1-200 characters"),
    ("model: " + "x" * 1_000_000 + "\n", "976.6 KiB, over the 256.0 KiB limit"),
    (META + "source: " + "[" * 50 + "]" * 50 + "\n", "nested deeper"),
    ("model: [unclosed\n", "cannot read submission metadata"),
    (META + "url: javascript:alert(1)\n", "'url' must start with https://"),
], ids=["alias-bomb", "alias", "inf-params", "unknown-field", "long-name", "1MB-name", "deep-nesting", "unparsable",
        "javascript-url"])
def test_metadata_bombs_and_bad_values(tmp_path, reference, valid_rows, meta, expected):
    folder = make(tmp_path, meta=meta)
    valid_rows.to_csv(folder / "runs.csv", index=False)
    assert_refused(folder, reference, expected)


def test_deep_json_metadata(tmp_path, reference, valid_rows):
    folder = make(tmp_path, meta=None)
    (folder / "submission.json").write_text('{"model": "m", "source": ' + "[" * 5000 + "]" * 5000 + "}")
    valid_rows.to_csv(folder / "runs.csv", index=False)
    assert_refused(folder, reference, "submission.json")


@pytest.mark.parametrize("name, content, expected", [
    ("bad.parquet", b"PAR1" + os.urandom(2000) + b"PAR1", "cannot parse as parquet"),
    ("bad.jsonl", b'[1, 2, 3]\n["a"]\n', "bad.jsonl"),
    ("deep.jsonl", b'{"instance_id": ' + b"[" * 3000 + b"]" * 3000 + b"}\n", "deep.jsonl"),
    ("cut.csv", b"instance_id,finetune_seed,prob_a,prob_b,prob_c\ni0,0,0.2,0.3,0.", "looks cut off"),
    ("bin.csv", os.urandom(5000) + b"\n", "bin.csv"),
])
def test_corrupt_files_are_one_line_problems(tmp_path, reference, name, content, expected):
    folder = make(tmp_path)
    (folder / name).write_bytes(content)
    assert_refused(folder, reference, expected)


def test_hostile_pandas_metadata_in_parquet_is_ignored(tmp_path, reference, valid_rows):
    folder = make(tmp_path)
    table = pa.Table.from_pandas(valid_rows, preserve_index=False)
    bomb = {b"pandas": json.dumps({"columns": [{"name": "x", "pandas_type": "categorical",
                                                "metadata": {"ordered": "{" * 10000}}] * 1000,
                                   "index_columns": [{"kind": "range", "start": 0, "stop": 10**18, "step": 1}]}).encode()}
    pq.write_table(table.replace_schema_metadata(bomb), folder / "runs.parquet")
    code, out, _ = validate(folder, reference)
    assert code == 0 and "Traceback" not in out, out


def test_huge_counts_are_refused_before_the_work(tmp_path, reference):
    folder = make(tmp_path, "rows")
    n = 50_000_000  # about 1 MB on disk: constant columns compress to almost nothing
    zeros = np.zeros(n, np.int8)
    pq.write_table(pa.table({"instance_id": pa.DictionaryArray.from_arrays(zeros, ["i0"]),
                             "finetune_seed": pa.DictionaryArray.from_arrays(zeros, [0])}), folder / "many.parquet")
    del zeros
    assert_refused(folder, reference, "more than")
    folder = make(tmp_path, "pairs")
    k = 20_000  # a unique (pretrain_seed, finetune_seed) pair per row
    pd.DataFrame({"instance_id": ["i0"] * k, "pretrain_seed": np.arange(k), "finetune_seed": np.arange(k),
                  "pred": ["a"] * k}).to_parquet(folder / "pairs.parquet")
    assert_refused(folder, reference, "pairs, more than 1000")
    folder = make(tmp_path, "unknown")
    m = 15_000  # unknown ids: the problem list stays short
    pd.DataFrame({"instance_id": ["i0"] + [f"nope{j}" for j in range(m)], "finetune_seed": 0, "pred": "a"}).to_parquet(
        folder / "unknown.parquet")
    assert_refused(folder, reference, "more row(s) like these")
    folder = make(tmp_path, "long")
    pd.DataFrame({"instance_id": ["x" * 1_000_000], "finetune_seed": [0], "pred": ["a"]}).to_parquet(folder / "l.parquet")
    assert_refused(folder, reference, "1,000,000 characters")
