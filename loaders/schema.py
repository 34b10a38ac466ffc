"""The prediction dataset's tables, declared once: Arrow schemas (which `datasets` reads as its features) and the
on-disk layout.

Three long, normalised tables (one ``configs:`` entry per task for predictions, plus ``runs`` and
``instances``):

``predictions``  one row per (run, instance): which run (size, pretraining seed, finetuning seed,
                 checkpoint) predicted what on which instance of which evaluation set.
``runs``         one row per run: model, seeds, checkpoint, hyperparameters, versions, accuracy, wall time.
``instances``    one row per (task, evaluation set, instance): original split and id, text (may be null
                 when a release may not redistribute it), gold label and an ``instance_hash``.

A *run* is one checkpoint of one finetuning run; ``run_id`` is ``{size}__p{P}__f{F}__c{checkpoint}``.
Gold labels index ``label_names + collapsed label names`` (see :data:`COLLAPSED_NOTE`); ``probs`` always has
one entry per name in ``label_names``.

Everything that reads or writes these tables imports the names from here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

# 2: predictions carry instance_index and are sorted by (seeds, checkpoint, instance); 3: each task states its seed
# design and runs record precision, stacked runs and their random streams
FORMAT_VERSION = 3
# How a task's finetuning seeds relate to its pretraining seeds: "nested" (every run's randomness from its size,
# pretraining seed and finetuning seed: runs share nothing), "crossed" (finetuning seed f shared by every
# pretrained model), "unknown" (not recorded, e.g. imported runs).
SEED_DESIGNS = ("nested", "crossed", "unknown")
# Task and evaluation-set names become config and split names on the Hub (split names must match \w+).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
# Size names become file names.
SIZE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

COLLAPSED_NOTE = (
    "A collapsed gold label (e.g. HANS 'non-entailment') stands for several model classes: a prediction is "
    "correct when it is any of them and the gold-label probability is the sum of their probabilities."
)

# One run's rows in a generation shard (release/shards.py).
SHARD_PREDICTIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("eval_set", pa.string()),
        ("size", pa.string()),
        ("pretrain_seed", pa.int32()),
        ("finetune_seed", pa.int32()),
        ("checkpoint", pa.int32()),
        ("instance_id", pa.string()),
        ("pred", pa.int16()),
        ("probs", pa.list_(pa.float32())),
        ("prob_gold", pa.float32()),
        ("correct", pa.int8()),
    ]
)

# A release file ``data/<task>/<eval_set>/<size>.parquet``: shard rows plus ``instance_index`` (the row of the
# instance among its evaluation set's instances, in the instances table's order), sorted by pretraining seed,
# finetuning seed, checkpoint and instance_index, so that a complete grid is a reshape away from a tensor.
# ``pred`` is int64 there: the width of a ``datasets.ClassLabel``, which the files declare (label names, not codes).
PREDICTIONS = pa.schema(
    [*SHARD_PREDICTIONS][:8] + [pa.field("instance_index", pa.int32()), pa.field("pred", pa.int64())]
    + [*SHARD_PREDICTIONS][9:]
)
SORT_KEYS = ("pretrain_seed", "finetune_seed", "checkpoint", "instance_index")

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("family", pa.string()),
        ("size", pa.string()),
        ("n_params", pa.int64()),
        ("model", pa.string()),
        ("revision", pa.string()),
        ("pretrain_seed", pa.int32()),
        ("finetune_seed", pa.int32()),
        ("checkpoint", pa.int32()),
        ("epoch", pa.float32()),
        ("step", pa.int64()),
        ("hyperparameters", pa.string()),  # JSON object
        ("versions", pa.string()),  # JSON object: package -> version
        ("device", pa.string()),
        ("spec_hash", pa.string()),
        ("wall_time_s", pa.float64()),  # the finetuning run's share of its process's wall time
        ("precision", pa.string()),  # "bf16" (autocast) or "fp32"; "" when not recorded
        ("runs_in_process", pa.int32()),  # finetuning runs trained together (stacked) in one process
        ("seed_design", pa.string()),  # see SEED_DESIGNS ("" when not recorded)
        ("stream_seeds", pa.string()),  # JSON object: random stream (head, order, dropout) -> its seed
        ("accuracy", pa.list_(pa.struct([("eval_set", pa.string()), ("accuracy", pa.float64())]))),
    ]
)

INSTANCES = pa.schema(
    [
        ("task", pa.string()),
        ("eval_set", pa.string()),
        ("instance_id", pa.string()),
        ("original_split", pa.string()),
        ("original_id", pa.string()),
        ("text_a", pa.string()),
        ("text_b", pa.string()),
        ("label", pa.int64()),  # a datasets.ClassLabel in release files
        ("label_name", pa.string()),
        ("instance_hash", pa.string()),
    ]
)


def gold_class_mask(label_names: Sequence[str], collapsed_labels: Mapping[str, Sequence[str]]) -> np.ndarray:
    """(n_gold_names, n_classes) boolean: which model classes count as correct for each gold label index
    (the classes themselves, then each collapsed label's member classes)."""
    n = len(label_names)
    mask = np.zeros((n + len(collapsed_labels), n), dtype=bool)
    mask[np.arange(n), np.arange(n)] = True
    for k, members in enumerate(collapsed_labels.values()):
        mask[n + k, [list(label_names).index(m) for m in members]] = True
    return mask


def run_id(size: str, pretrain_seed: int, finetune_seed: int, checkpoint: int) -> str:
    return f"{size}__p{pretrain_seed}__f{finetune_seed}__c{checkpoint}"


def training_run_name(size: str, pretrain_seed: int, finetune_seed: int) -> str:
    """File stem of a per-run shard: one finetuning run, all of its checkpoints."""
    return f"{size}__p{pretrain_seed}__f{finetune_seed}"


def instance_hash(text_a: str, text_b: str | None, label_name: str) -> str:
    """sha256 of the input text(s) and the gold label name, so two parties can prove they scored the same item."""
    payload = "\x1f".join([text_a, text_b if text_b is not None else "", label_name])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# Release layout (relative to the dataset root).
def predictions_path(task: str, eval_set: str, size: str) -> str:
    return f"data/{task}/{eval_set}/{size}.parquet"


def instances_path(task: str, eval_set: str) -> str:
    return f"instances/{task}/{eval_set}.parquet"


def runs_path(task: str) -> str:
    return f"runs/{task}.parquet"
MANIFEST_PATH = "manifest.json"
CARD_PATH = "README.md"

__all__ = [
    "CARD_PATH",
    "COLLAPSED_NOTE",
    "FORMAT_VERSION",
    "gold_class_mask",
    "INSTANCES",
    "MANIFEST_PATH",
    "NAME_PATTERN",
    "PREDICTIONS",
    "RUNS",
    "SEED_DESIGNS",
    "SHARD_PREDICTIONS",
    "SIZE_PATTERN",
    "SORT_KEYS",
    "instance_hash",
    "instances_path",
    "predictions_path",
    "run_id",
    "runs_path",
    "training_run_name",
]
