"""Import the raw prediction release of Zhong et al. (2021) into per-run shards.

Their layout, per task folder (SST-2 has ``fold0`` .. ``fold4`` subfolders, each laid out the same way and
predicting its held-out fold)::

    data.json                                   {"label_list": [...], "predict": [{guid, text_a, text_b?, label}]}
    results/s{size}p{P}f{F}epoch{E}over3.tsv    one row of class probabilities per `predict` entry

size in mini/small/medium/base/large, P in 1..10, F in 1..5, E in 9..12 (checkpoints at E/3 epochs). The guid
prefix (``dev_matched`` in ``dev_matched-17``) becomes the evaluation set and the original split. A gold
label ``non-X`` that is not a model class (HANS ``non-entailment``) becomes a collapsed label over every class
except X.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from ..loaders import schema
from ..release.shards import Checkpoint, RunMeta, ShardError, TaskInfo, make_predictions, write_shard, write_task

RESULT_NAME = re.compile(r"^s(?P<size>[a-z]+)p(?P<p>\d+)f(?P<f>\d+)epoch(?P<e>\d+)over3\.tsv$")
# Parameter counts of the BERT miniatures / BERT shapes (Turc et al. 2019; Devlin et al. 2019).
N_PARAMS = {"mini": 11_300_000, "small": 29_100_000, "medium": 41_700_000, "base": 110_100_000, "large": 335_100_000}


def _read_data(folder: Path) -> tuple[list[str], list[dict]]:
    path = folder / "data.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        labels, predict = [str(x) for x in raw["label_list"]], raw["predict"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{path}: expected a JSON object with 'label_list' and 'predict' ({exc})") from None
    for k, item in enumerate(predict):
        if not isinstance(item, dict) or not {"guid", "text_a", "label"} <= item.keys():
            raise ShardError(f"{path}: predict[{k}] needs keys guid, text_a, label")
    return labels, predict


def _split_of(guid: str) -> str:
    prefix = guid.rsplit("-", 1)[0] if "-" in guid else "eval"
    return re.sub(r"\W", "_", prefix)


def _collapsed(gold: str, labels: list[str], where: str) -> tuple[str, ...]:
    if gold.startswith("non-") and gold[4:] in labels:
        return tuple(label for label in labels if label != gold[4:])
    raise ShardError(f"{where}: gold label {gold!r} is not in label_list {labels}")


def import_2021(source: str | Path, shards_root: str | Path, task: str | None = None, *, progress: bool = True) -> int:
    """Convert one task folder of the 2021 release into shards under ``shards_root``; return the runs written."""
    source, shards_root = Path(source), Path(shards_root)
    folds = sorted(p for p in source.glob("fold*") if p.is_dir()) or [source]
    task = task or re.sub(r"\W", "", source.name.lower().replace("-", ""))

    labels: list[str] | None = None
    predict: list[dict] = []
    fold_of_row: list[int] = []
    results: dict[tuple[str, int, int, int], dict[int, Path]] = defaultdict(dict)
    for k, fold in enumerate(folds):
        fold_labels, fold_predict = _read_data(fold)
        if labels is not None and fold_labels != labels:
            raise ShardError(f"{fold / 'data.json'}: label_list {fold_labels} differs from {folds[0]}'s {labels}")
        labels = fold_labels
        predict += fold_predict
        fold_of_row += [k] * len(fold_predict)
        tsvs = sorted((fold / "results").glob("*.tsv"))
        if not tsvs:
            raise ShardError(f"{fold / 'results'}: no s<size>p<P>f<F>epoch<E>over3.tsv files")
        for tsv in tsvs:
            m = RESULT_NAME.match(tsv.name)
            if not m:
                raise ShardError(f"{tsv}: file name does not match s<size>p<P>f<F>epoch<E>over3.tsv")
            results[(m["size"], int(m["p"]), int(m["f"]), int(m["e"]))][k] = tsv
    assert labels is not None

    guids = [str(item["guid"]) for item in predict]
    if len(set(guids)) != len(guids):
        raise ShardError(f"{source}: duplicate guids across data.json files")
    collapsed: dict[str, tuple[str, ...]] = {}
    for item in predict:
        gold = str(item["label"])
        if gold not in labels and gold not in collapsed:
            collapsed[gold] = _collapsed(gold, labels, str(source))
    eval_sets = [_split_of(g) for g in guids]
    info = TaskInfo(task, tuple(labels), tuple(dict.fromkeys(eval_sets)), collapsed)
    gold_index = {name: i for i, name in enumerate(info.gold_names)}
    gold = np.array([gold_index[str(item["label"])] for item in predict])
    text_b = [item.get("text_b") for item in predict]
    instances = pa.table({
        "task": [task] * len(predict), "eval_set": eval_sets, "instance_id": guids, "original_split": eval_sets,
        "original_id": guids, "text_a": [str(item["text_a"]) for item in predict], "text_b": text_b,
        "label": gold.astype(np.int16), "label_name": [str(item["label"]) for item in predict],
        "instance_hash": [schema.instance_hash(str(it["text_a"]), it.get("text_b"), str(it["label"])) for it in predict],
    }, schema=schema.INSTANCES)
    write_task(shards_root, info, instances)

    fold_rows = np.array(fold_of_row)
    by_run: dict[tuple[str, int, int], dict[int, dict[int, Path]]] = defaultdict(dict)
    for (size, p, f, e), per_fold in results.items():
        by_run[(size, p, f)][e] = per_fold
    for (size, p, f), per_epoch in tqdm(sorted(by_run.items()), desc=f"importing {task}", disable=not progress):
        _write_run(shards_root, info, size, p, f, per_epoch, len(folds), fold_rows, guids, eval_sets, gold, labels)
    return len(by_run)


def _write_run(root: Path, info: TaskInfo, size: str, p: int, f: int, per_epoch: dict[int, dict[int, Path]],
               n_folds: int, fold_rows: np.ndarray, guids: list[str], eval_sets: list[str], gold: np.ndarray,
               labels: list[str]) -> None:
    epochs = sorted(per_epoch)
    meta = RunMeta(task=info.task, family="bert (Zhong et al. 2021)", size=size, n_params=N_PARAMS.get(size, 0),
                   model=f"zhong2021/bert-{size} (pretraining seed {p}; weights not public)",
                   pretrain_seed=p, finetune_seed=f,
                   checkpoints=tuple(Checkpoint(e, e / 3, 0) for e in epochs),
                   hyperparameters={"epochs": 4, "max_seq_length": 128, "warmup": 0.1},
                   versions={"source": "ruiqi-zhong/acl2021-instance-level release"})
    tables = []
    sets = np.array(eval_sets)
    for e in epochs:
        probs = np.empty((len(guids), len(labels)), dtype=np.float32)
        for k in range(n_folds):
            tsv = per_epoch[e].get(k)
            if tsv is None:
                raise ShardError(f"s{size}p{p}f{f}epoch{e}over3.tsv: missing in fold{k}/results")
            rows = np.flatnonzero(fold_rows == k)
            try:
                values = pd.read_csv(tsv, sep="\t", header=None, quoting=3, dtype=np.float64).to_numpy()
            except (ValueError, pd.errors.ParserError) as exc:
                raise ShardError(f"{tsv}: not a tab-separated table of probabilities ({exc})") from None
            if values.shape != (rows.size, len(labels)):
                raise ShardError(f"{tsv}: expected {rows.size} rows x {len(labels)} probability columns "
                                 f"({', '.join(labels)}), found {values.shape[0]} x {values.shape[1]}")
            sums = values.sum(axis=1)
            bad = np.flatnonzero(~np.isfinite(sums) | (np.abs(sums - 1) > 1e-3))
            if bad.size:
                raise ShardError(f"{tsv}: row {bad[0] + 1}: probabilities sum to {sums[bad[0]]:.6g}, expected 1")
            probs[rows] = values
        for eval_set in info.eval_sets:
            rows = np.flatnonzero(sets == eval_set)
            tables.append(make_predictions(meta, info, e, eval_set, [guids[r] for r in rows], gold[rows], probs[rows]))
    write_shard(root, meta, pa.concat_tables(tables))
