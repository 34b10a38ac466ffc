"""Checking a parsed submission against the reference (the second step of reading a submission): its metadata
fields, which task and evaluation set it is for, and every row: instance ids and hashes, seeds, labels and
probabilities. Problems are collected with file, row and field; nothing here opens a submitted file."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...loaders import schema
from ...loaders.read import load_instances, read_manifest
from .problems import Problem, add_rows, excerpt

METADATA_FIELDS = {"model", "task", "split", "params", "pretrained", "url", "contact", "submitted", "hub_model_id",
                   "hub_revision", "source", "runs", "seed_design", "training_data"}
PROB_TOLERANCE = 1e-3
MAX_RUNS = 1000  # (pretraining seed, finetuning seed) pairs


@dataclass(frozen=True)
class Target:
    """The reference evaluation set a submission is checked against: its labels and instances (in the
    reference's order) and, per instance, which model classes count as correct (``gold_mask``)."""

    folder: Path
    task: str
    split: str
    labels: list[str]
    instances: pd.DataFrame
    gold_mask: np.ndarray

    @property
    def instance_ids(self) -> np.ndarray:
        return self.instances["instance_id"].to_numpy()


def find_target(meta: dict[str, object], folder: Path, where: str | Path, has_metadata_file: bool = True) -> Target:
    """The task and evaluation set named by the metadata (or the reference's only one), loaded from ``folder``;
    fills ``meta['task']`` and ``meta['split']``."""
    manifest = read_manifest(folder)
    how = ("set it in submission.yaml" if has_metadata_file else
           "there is no submission.yaml: write one (model, task, split, params, training_data) or pass --task, "
           "--split and --model")
    task = str(meta.get("task") or (next(iter(manifest["tasks"])) if len(manifest["tasks"]) == 1 else ""))
    if task not in manifest["tasks"]:
        found = f"found {excerpt(task)}" + _did_you_mean(task, manifest["tasks"]) if task else "none given"
        raise ValueError(f"{where}: the task must be one of {sorted(manifest['tasks'])}, {found}; {how}")
    entry = manifest["tasks"][task]
    split = str(meta.get("split") or (next(iter(entry["eval_sets"])) if len(entry["eval_sets"]) == 1 else ""))
    if split not in entry["eval_sets"]:
        found = f"found {excerpt(split)}" + _did_you_mean(split, entry["eval_sets"]) if split else "none given"
        raise ValueError(f"{where}: the split (evaluation set) must be one of {list(entry['eval_sets'])}, {found}; "
                         f"{how}")
    meta["task"], meta["split"] = task, split
    labels = entry["label_names"]
    instances = load_instances(folder, task, split)
    gold_mask = schema.gold_class_mask(labels, entry.get("collapsed_labels", {}))[instances["label"].to_numpy()]
    return Target(folder, task, split, labels, instances, gold_mask)


def _did_you_mean(value: str, choices) -> str:
    close = difflib.get_close_matches(str(value).lower(), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_TEXT_FIELDS = {"model": 200, "training_data": 500, "pretrained": 500, "url": 500, "contact": 200, "hub_revision": 100, "submitted": 40}


def check_metadata(meta: dict[str, object], where: str) -> dict[str, object]:
    """Check field names, types and sizes of submission metadata; return it with dates as strings."""
    unknown = sorted(set(map(str, meta)) - METADATA_FIELDS)
    if unknown:
        hint = _did_you_mean(unknown[0], METADATA_FIELDS)
        raise ValueError(f"{where}: unknown metadata field(s) {', '.join(excerpt(u, 30) for u in unknown)}{hint}; "
                         f"allowed: {', '.join(sorted(METADATA_FIELDS))}")
    out = dict(meta)
    for name, limit in _TEXT_FIELDS.items():
        if name in out and out[name] is not None:
            value = str(out[name]) if name == "submitted" else out[name]  # YAML reads dates as dates
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                raise ValueError(f"{where}: field {name!r} must be text of 1-{limit} characters, found "
                                 f"{type(value).__name__} {excerpt(value)}")
            out[name] = value
    for name in ("task", "split"):  # which names exist is checked against the reference (find_target)
        if name in out and out[name] is not None and not (isinstance(out[name], str) and len(out[name]) <= 100):
            raise ValueError(f"{where}: field {name!r} must be a name, found {excerpt(out[name])}")
    if out.get("params") is not None:
        params = out["params"]
        if isinstance(params, str) and re.fullmatch(r"\s*[0-9.]+[eE][+]?[0-9]+\s*", params):
            params = float(params)  # YAML 1.1 reads 1e6 as text
        if isinstance(params, float) and params.is_integer() and 0 < params < 10**14:
            params = out["params"] = int(params)
        if isinstance(params, bool) or not isinstance(params, int) or not 0 < params < 10**14:
            raise ValueError(f"{where}: field 'params' must be a whole number of parameters, found {excerpt(params)}")
    if out.get("seed_design") is not None and out["seed_design"] not in ("nested", "crossed"):
        raise ValueError(f"{where}: field 'seed_design' must be 'nested' (every run's randomness from its pretraining "
                         f"and finetuning seed) or 'crossed' (finetuning seed f shared by every pretrained model), "
                         f"found {excerpt(out['seed_design'])}")
    if out.get("url") and not str(out["url"]).startswith(("https://", "http://")):
        raise ValueError(f"{where}: field 'url' must start with https:// or http://, found {excerpt(out['url'])}")
    hub_id = out.get("hub_model_id")
    if hub_id is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(str(hub_id))
        except HFValidationError:
            raise ValueError(f"{where}: field 'hub_model_id' must be a Hub model id like 'org/name', found "
                             f"{excerpt(hub_id)}") from None
        if not isinstance(hub_id, str) or "/" not in hub_id:
            raise ValueError(f"{where}: field 'hub_model_id' must be a Hub model id like 'org/name'")
    if "source" in out and not (isinstance(out["source"], dict) and len(out["source"]) <= 20):
        raise ValueError(f"{where}: field 'source' must be a mapping of at most 20 entries")
    if "runs" in out and not (isinstance(out["runs"], list) and len(out["runs"]) <= MAX_RUNS
                              and all(isinstance(r, dict) and len(r) <= 20 for r in out["runs"])):
        raise ValueError(f"{where}: field 'runs' must be a list of at most {MAX_RUNS} mappings")
    for value in _leaves(out):
        if isinstance(value, str) and len(value) > 2000:
            raise ValueError(f"{where}: a metadata value has {len(value):,} characters (at most 2,000)")
    return out


def _leaves(value: object):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
        else:
            yield item


def _probabilities(df: pd.DataFrame, labels: list[str], name: str, problems: list[Problem]) -> np.ndarray | None:
    """(n, C) probabilities from a ``probs`` list column or ``prob_<label>`` columns; None if absent."""
    prob_cols = [f"prob_{label}" for label in labels]
    if "probs" in df.columns:
        lengths = df["probs"].map(lambda v: len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1).to_numpy()
        bad = np.flatnonzero(lengths != len(labels))
        if bad.size:
            add_rows(problems, name, bad, "probs", lambda r: f"expected a list of {len(labels)} probabilities "
                     f"({', '.join(labels)})")
            return None
        try:
            probs = np.array(df["probs"].tolist(), dtype=np.float64).reshape(len(df), len(labels))
        except (TypeError, ValueError):
            problems.append(Problem(name, None, "probs", "expected lists of numbers"))
            return None
    elif any(c.startswith("prob_") for c in df.columns):
        given = {c[len("prob_"):].casefold(): c for c in df.columns if c.startswith("prob_")}
        found = [c if c in df.columns else given.get(label.casefold()) for c, label in zip(prob_cols, labels)]
        if None in found:
            missing = prob_cols[found.index(None)]
            problems.append(Problem(name, None, missing, f"missing; probability columns are prob_<label name>: "
                                                         f"{prob_cols}"))
            return None
        probs = df[found].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    else:
        return None
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(~np.isfinite(sums) | (np.abs(sums - 1) > PROB_TOLERANCE) | (np.nan_to_num(probs, nan=-1).min(axis=1) < 0))
    add_rows(problems, name, bad, "probs", lambda r: f"probabilities must be finite, >= 0 and sum to 1 "
             f"(+-{PROB_TOLERANCE}); found sum {sums[r]:.6g}")
    return None if bad.size else probs


def _labels_from_pred(values: pd.Series, labels: list[str], name: str, problems: list[Problem]) -> np.ndarray:
    text = values.astype(str).str.strip()
    folded = [label.casefold() for label in labels]
    names = {label: k for k, label in enumerate(labels)}
    if len(set(folded)) == len(folded):  # label names that differ only by case cannot be told apart
        text = text.str.casefold()
        names = {label: k for k, label in enumerate(folded)}
    by_name = text.map(names)
    as_int = pd.to_numeric(text, errors="coerce")
    index_ok = as_int.notna() & (as_int == as_int.round()) & (as_int >= 0) & (as_int < len(labels))
    pred = by_name.where(by_name.notna(), as_int.where(index_ok))
    bad = np.flatnonzero(pred.isna().to_numpy())
    add_rows(problems, name, bad, "pred", lambda r: f"{excerpt(values.iloc[r])} is not a label name {labels} or "
             f"index 0..{len(labels) - 1}")
    return pred.fillna(-1).to_numpy(dtype=np.int64)


def check_rows(name: str, df: pd.DataFrame, target: Target, problems: list[Problem]) -> pd.DataFrame:
    """Check one parsed file's rows against the reference, appending to ``problems``; return the rows as (file,
    row, seeds, checkpoint, instance index, pred, probs)."""
    labels, instances = target.labels, target.instances
    before = len(problems)
    for column in ("instance_id", "finetune_seed"):
        if column not in df.columns:
            problems.append(Problem(name, None, column, f"required column missing; found {sorted(df.columns)[:12]}"))
    probs = _probabilities(df, labels, name, problems)
    if "pred" not in df.columns and probs is None and len(problems) == before:
        problems.append(Problem(name, None, "pred", f"give 'pred' (label name or index), 'probs' or prob_<label> "
                                f"columns for labels {labels}"))
    if len(problems) > before:
        return pd.DataFrame()
    out = pd.DataFrame({"file": name, "row": np.arange(1, len(df) + 1)})
    for column, default in (("pretrain_seed", 0), ("finetune_seed", None), ("checkpoint", 0)):
        raw = df[column] if column in df.columns else pd.Series(default, index=df.index)
        values = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero((values.isna() | (values != values.round()) | (values.abs() >= 2**31)).to_numpy())
        add_rows(problems, name, bad, column, lambda r: f"expected an integer, found {excerpt(raw.iloc[r])}")
        out[column] = values.where(values.abs() < 2**31).fillna(-1).astype(np.int64).to_numpy()
    ids = df["instance_id"].astype(str).to_numpy()
    position = pd.Index(instances["instance_id"]).get_indexer(ids)
    eval_set, example = instances["eval_set"].iloc[0], excerpt(instances["instance_id"].iloc[0])
    if len(ids) and (position < 0).all():  # nothing matches: most likely another evaluation set or id format
        if pd.Series(ids).str.fullmatch(r"\d+").all():
            fix = (f"these look like row numbers; write the reference's ids (like {example}; for GLUE data "
                   f"'<original split>-<row>') instead")
        else:
            fix = "set 'split' in submission.yaml to the evaluation set the predictions are for"
        problems.append(Problem(name, None, "instance_id", f"none of the {len(ids):,} ids is an instance of evaluation "
                                f"set {eval_set!r} (its ids look like {example}; found e.g. {excerpt(ids[0])}): {fix}"))
    else:
        add_rows(problems, name, np.flatnonzero(position < 0), "instance_id",
                 lambda r: f"{excerpt(ids[r])} is not an instance of the reference evaluation set {eval_set!r} (ids "
                           f"look like {example})")
    out["instance"] = position
    if "instance_hash" in df.columns:
        known = position >= 0
        mismatch = np.flatnonzero(known & (df["instance_hash"].astype(str).to_numpy()
                                           != instances["instance_hash"].to_numpy()[np.maximum(position, 0)]))
        add_rows(problems, name, mismatch, "instance_hash", lambda r: "does not match the reference's hash of this "
                 "instance (a different item or text)")
    if probs is not None:
        out["pred"] = probs.argmax(axis=1)
        out["probs"] = list(probs)
        if "pred" in df.columns:  # both given: they must agree (a tie in probs accepts any tied class)
            given = _labels_from_pred(df["pred"], labels, name, problems)
            ok = (given < 0) | (probs[np.arange(len(probs)), np.maximum(given, 0)] >= probs.max(axis=1))
            add_rows(problems, name, np.flatnonzero(~ok), "pred", lambda r: f"{excerpt(df['pred'].iloc[r])} disagrees "
                     f"with probs, whose largest is {labels[int(out['pred'].iloc[r])]!r}")
    else:
        out["pred"] = _labels_from_pred(df["pred"], labels, name, problems)
    return out
