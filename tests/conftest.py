"""Shared test set-up: tests never touch the network."""

import os

import tempfile  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# A fresh datasets cache per test session: a user's cache never feeds (stale) tables to the tests.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="instdecay-tests-hf-cache-")
os.environ.setdefault("MPLBACKEND", "Agg")


from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """A local GLUE folder (``<task>/train.tsv, dev.tsv``): ``INSTDECAY_GLUE_DIR``, else the data beside this
    checkout; tests that need the real benchmark text skip when there is none."""
    folder = Path(os.environ.get("INSTDECAY_GLUE_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"))
    if not (folder / "sst2" / "train.tsv").is_file():
        pytest.skip("no local GLUE data: set INSTDECAY_GLUE_DIR to a folder with sst2/train.tsv and sst2/dev.tsv")
    return folder


def write_toy_shards(root, task="toy", sizes=(("tiny", 1000), ("small", 5000)), n_pretrain=2, n_finetune=2,
                     checkpoints=(1, 2), n_instances=30, eval_sets=("validation", "heldout"), seed=0, skip=(),
                     seed_design="unknown"):
    """Random but valid shards: a 3-class task, instances split over ``eval_sets``; returns the probabilities
    written, keyed by (size, P, F, checkpoint) -> (n_instances, 3) in instance order."""
    from instdecay.loaders import schema
    from instdecay.release.shards import Checkpoint, RunMeta, TaskInfo, make_predictions, write_shard, write_task

    rng = np.random.default_rng(seed)
    info = TaskInfo(task, ("a", "b", "c"), tuple(eval_sets))
    ids = [f"i{k}" for k in range(n_instances)]
    sets = [eval_sets[k % len(eval_sets)] for k in range(n_instances)]
    gold = rng.integers(0, 3, n_instances)
    instances = pa.table({
        "task": [task] * n_instances, "eval_set": sets, "instance_id": ids, "original_split": ["train"] * n_instances,
        "original_id": [str(k) for k in range(n_instances)], "text_a": [f"text {k}" for k in range(n_instances)],
        "text_b": [None] * n_instances, "label": gold.astype(np.int16), "label_name": [info.label_names[g] for g in gold],
        "instance_hash": [schema.instance_hash(f"text {k}", None, info.label_names[g]) for k, g in enumerate(gold)],
    }, schema=schema.INSTANCES)
    write_task(root, info, instances)
    written = {}
    for size, n_params in sizes:
        for p in range(n_pretrain):
            for f in range(n_finetune):
                if (size, p, f) in skip:
                    continue
                meta = RunMeta(task=task, family="toy", size=size, n_params=n_params, model=f"toy/{size}",
                               pretrain_seed=p, finetune_seed=f,
                               checkpoints=tuple(Checkpoint(c, float(c), 10 * c) for c in checkpoints),
                               wall_time_s=1.5, seed_design=seed_design)
                tables = []
                for c in checkpoints:
                    probs = rng.dirichlet(np.ones(3), n_instances).astype(np.float32)
                    written[(size, p, f, c)] = probs
                    for eval_set in eval_sets:
                        rows = [k for k in range(n_instances) if sets[k] == eval_set]
                        tables.append(make_predictions(meta, info, c, eval_set, [ids[k] for k in rows], gold[rows], probs[rows]))
                write_shard(root, meta, pa.concat_tables(tables))
    return {"info": info, "instances": instances, "gold": gold, "sets": np.array(sets), "probs": written}


@pytest.fixture(scope="session")
def shard_writer():
    """The ``write_toy_shards`` helper, for tests that need a variant of the toy shards."""
    return write_toy_shards


@pytest.fixture
def toy_shards(tmp_path):
    root = tmp_path / "shards"
    return root, write_toy_shards(root)


@pytest.fixture
def toy_release(tmp_path, toy_shards):
    from instdecay.release import build_release

    root, written = toy_shards
    out = tmp_path / "release"
    build_release(root, out, progress=False)
    return out, written


@pytest.fixture(scope="session")
def toy_reference(tmp_path_factory):
    """A read-only reference release: 2 sizes x 2 pretraining x 2 finetuning seeds, 40 instances (20 per
    evaluation set). Tests that change files build their own."""
    from instdecay.release import build_release

    tmp = tmp_path_factory.mktemp("toy_reference")
    write_toy_shards(tmp / "shards", n_pretrain=2, n_finetune=2, n_instances=40)
    build_release(tmp / "shards", tmp / "release", progress=False, analysis=False)
    return tmp / "release"
