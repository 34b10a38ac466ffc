"""Import lm-evaluation-harness ``--log_samples`` output as a submission, checked against the reference.

The harness writes, per model, ``<output>/<org>__<model>/results_<timestamp>.json`` and
``samples_<task>_<timestamp>.jsonl`` (one JSON object per document and filter: ``doc_id``, ``doc``, ``target``,
``arguments``, ``filtered_resps``, ``filter``, metrics). One model folder is one run: finetuning seeds are
usually part of the model name, e.g. ``org__bert-sst2-seed3``.

What is checked, so that nothing is silently misread:

- **Choices** come from each sample's ``arguments`` (the continuation of each choice, without the task's target
  delimiter), and are mapped to the reference's label names by name (case, punctuation and whitespace ignored)
  or by ``labels`` (a mapping ``choice=label``, or the label of each choice in order, checked against the choice
  names when they are label names). Probabilities follow the choices, never their position.
- **Documents**: each line's ``doc`` text and ``target`` give the instance hash, compared with the reference's
  instance at ``id_template`` (``doc_id``); mismatches are refused with counts and examples, or re-aligned by
  content with ``realign=True``.
- **Seeds** come from explicit arguments, a mapping file, or the model folder name ending in ``-seed<k>``
  (finetuning seed k of pretraining seed 0) or ``-pseed<p>-fseed<f>``; never from other digits.
- **Filters**: one filter per import (``filter``), required when a file has several.
- **Generated answers** (``generate_until`` tasks) are normalised (case, punctuation, whitespace) and matched
  to the label names or choices.
- ``metric="acc_norm"`` predicts ``argmax(loglik / len(choice))`` (the harness's length normalisation, in
  characters) and writes labels only; ``"acc"`` writes the softmax of the choices' log-likelihoods.

Metadata from the ``results_*.json`` beside each samples file (model, revision and sha, few-shot count, task
and harness versions) goes into ``submission.yaml``.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...loaders import schema
from ...loaders.read import load_instances, read_manifest, resolve
from .importers import SEED_SUFFIXES, assign_seeds, common_model_name, read_seed_map, write_submission
from .problems import excerpt
from ...loaders.manifest import unique_keys
from ...safe_read import UnsafeFile, read_text_capped

# Record caps, checked before parsing: a samples file holds one record per document and filter.
MAX_RECORDS_PER_INSTANCE = 8
MIN_RECORDS = 1000
MAX_RESULTS_BYTES = 64 << 20
ID_TEMPLATE = re.compile(r"^[^{}]{0,100}\{doc_id\}[^{}]{0,100}$")
SAMPLES = re.compile(r"^samples_(?P<task>.+)_(?P<stamp>\d{4}-\d{2}-\d{2}T[\d\-:.]+)\.jsonl$")
# Text fields of the documents of GLUE tasks as the harness loads them (nyu-mll/glue).
DOC_FIELDS = {"sst2": ("sentence",), "mnli": ("premise", "hypothesis"), "qqp": ("question1", "question2"),
              "rte": ("sentence1", "sentence2"), "mrpc": ("sentence1", "sentence2"), "qnli": ("question", "sentence"),
              "cola": ("sentence",), "wnli": ("sentence1", "sentence2")}
MAX_EXAMPLES = 3


def normalise(text: str) -> str:
    """Case-folded text without punctuation and with single spaces ("Negative." -> "negative")."""
    text = text.casefold().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


@dataclass(frozen=True)
class HarnessRun:
    samples: Path
    results: Path | None
    pretrain_seed: int
    finetune_seed: int


def find_runs(sources: Sequence[str | Path], task: str) -> list[Path]:
    """Samples files of ``task``: given files, or found in given folders (harness output folders or one model
    folder); the latest timestamp of each model folder."""
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise ValueError(f"{path}: no such file or folder")
        latest: dict[Path, Path] = {}
        for f in sorted(path.rglob(f"samples_{task}_*.jsonl")):
            m = SAMPLES.match(f.name)
            if m and m["task"] == task and not any(part.startswith(".") for part in f.relative_to(path).parts):
                latest[f.parent] = max(latest.get(f.parent, f), f, key=lambda p: SAMPLES.match(p.name)["stamp"])
        found += sorted(latest.values())
    if not found:
        raise ValueError(f"{', '.join(map(str, sources))}: no samples_{task}_<timestamp>.jsonl files "
                         f"(lm-evaluation-harness --log_samples output)")
    return found


def download_details(repo_id: str, task: str, revision: str | None = None) -> Path:
    """A Hub "details" dataset (lm-eval ``--hf_hub_log_args push_samples_to_hub=True``): fetch only the task's
    samples and the results files."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                      allow_patterns=[f"**samples_{task}_*.jsonl", "**results_*.json"]))
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError, ValueError) as exc:
        raise ValueError(f"{repo_id}: cannot download the details dataset ({str(exc).splitlines()[0]})") from None


def _results_for(samples: Path) -> Path | None:
    m = SAMPLES.match(samples.name)
    if m:
        candidate = samples.parent / f"results_{m['stamp']}.json"
        if candidate.is_file():
            return candidate
    return None


def harness_runs(files: list[Path], **seeds) -> list[HarnessRun]:
    """One run per samples file, its seeds from :func:`instdecay.evaluate.importers.assign_seeds` (the model
    folder's name, or a seed map keyed by folder or file name)."""
    found = assign_seeds([(str(f), (f.parent.name, f.name, str(f)), f.parent.name) for f in files],
                         unit="model folder", **seeds)
    return [HarnessRun(f, _results_for(f), p, k) for f, (p, k) in zip(files, found)]


def _lines(path: Path, filter_name: str | None, max_records: int) -> tuple[list[dict], str]:
    try:
        text = read_text_capped(path)
    except UnsafeFile as exc:
        raise ValueError(str(exc)) from None
    if text.count("\n") > max_records + 1:
        raise ValueError(f"{path}: more than {max_records:,} records, more than one per reference instance and "
                         f"filter; is it the samples file of this task?")
    records, filters = [], set()
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=unique_keys)
        except (ValueError, RecursionError):
            raise ValueError(f"{path}: line {line_no}: not JSON (or a key twice)") from None
        if not isinstance(record, dict) or not {"doc_id", "doc", "target", "filtered_resps"} <= set(record):
            raise ValueError(f"{path}: line {line_no}: not an lm-evaluation-harness sample (needs doc_id, doc, "
                             f"target, arguments, filtered_resps)")
        record["_line"] = line_no
        filters.add(str(record.get("filter", "none")))
        records.append(record)
    if filter_name is None:
        if len(filters) > 1:
            raise ValueError(f"{path}: samples of several filters {sorted(filters)}; choose one with --filter")
        filter_name = next(iter(filters), "none")
    elif filter_name not in filters:
        raise ValueError(f"{path}: no samples with filter {filter_name!r}; filters present: {sorted(filters)}")
    return [r for r in records if str(r.get("filter", "none")) == filter_name], filter_name


def _choices(record: dict, delimiter: str) -> list[str] | None:
    """Choice texts of a multiple-choice sample (continuations without the target delimiter); None for a
    generation sample."""
    args = record.get("arguments")
    if isinstance(args, dict):
        args = [args[k] for k in sorted(args, key=lambda k: int(re.sub(r"\D", "", k) or 0))]
        args = [[a[k] for k in sorted(a, key=lambda k: int(re.sub(r"\D", "", k) or 0))] if isinstance(a, dict) else a
                for a in args]
    if not isinstance(args, list) or not args or not all(isinstance(a, list) and len(a) >= 2 for a in args):
        return None
    if not all(isinstance(a[1], str) for a in args):
        return None  # generate_until: the second argument is the generation settings
    return [a[1][len(delimiter):] if a[1].startswith(delimiter) else a[1] for a in args]


def _label_map(choices: list[str], labels: list[str], given: str | None) -> dict[int, int]:
    """choice index -> reference label index."""
    norm_labels = [normalise(x) for x in labels]
    norm_choices = [normalise(c) for c in choices]
    if given:
        if "=" in given:
            pairs = dict(part.split("=", 1) for part in given.split(","))
            by_choice = {normalise(k): v.strip() for k, v in pairs.items()}
            names = [by_choice.get(c) for c in norm_choices]
        else:
            names = [g.strip() for g in given.split(",")]
            if len(names) != len(choices):
                raise ValueError(f"--labels lists {len(names)} names, the samples have {len(choices)} choices {choices}")
            clash = [(c, n) for c, n in zip(choices, names) if normalise(c) in norm_labels and normalise(c) != normalise(n)]
            if clash:
                raise ValueError(f"--labels {given!r} names the choices {choices} as {names}: choice {clash[0][0]!r} is "
                                 f"itself the label {clash[0][0]!r}; give the labels in the samples' choice order, or "
                                 f"map names explicitly (choice=label)")
    else:
        names = [labels[norm_labels.index(c)] if c in norm_labels else None for c in norm_choices]
    mapping = {}
    for k, name in enumerate(names):
        if name is None or normalise(name) not in norm_labels:
            raise ValueError(f"choice {choices[k]!r} is not a label of the reference {labels}; map it with "
                             f"--labels choice=label,...")
        mapping[k] = norm_labels.index(normalise(name))
    if sorted(mapping.values()) != list(range(len(labels))):
        raise ValueError(f"the choices {choices} do not cover the reference labels {labels} one to one")
    return mapping


@dataclass(frozen=True)
class _Parsed:
    frame: pd.DataFrame
    mismatches: list[str]
    n_mismatch: int


def _parse_run(run: HarnessRun, labels: list[str], instances: pd.DataFrame, max_records: int, *,
               given_labels: str | None,
               filter_name: str | None, metric: str, id_template: str, doc_fields: tuple[str, ...],
               delimiter: str, realign: bool) -> tuple[_Parsed, str]:
    records, used_filter = _lines(run.samples, filter_name, max_records)
    by_id = instances.set_index("instance_id")
    by_hash = instances.drop_duplicates("instance_hash", keep=False).set_index("instance_hash")["instance_id"]
    rows, mismatches, n_mismatch, choices, mapping = [], [], 0, None, None
    for record in records:
        where = f"{run.samples}: line {record['_line']}"
        doc = record["doc"]
        these = _choices(record, delimiter)
        if these is not None:
            if choices is None:
                choices, mapping = these, _label_map(these, labels, given_labels)
            elif these != choices:
                raise ValueError(f"{where}: choices {these} differ from the first sample's {choices}")
        gold = _gold(record, choices, mapping, labels, where)
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in doc_fields):
            raise ValueError(f"{where}: doc needs text field(s) {list(doc_fields)} (set --doc-fields)")
        digest = schema.instance_hash(doc[doc_fields[0]], doc[doc_fields[1]] if len(doc_fields) > 1 else None,
                                      labels[gold])
        doc_id = record["doc_id"]
        if isinstance(doc_id, bool) or not isinstance(doc_id, int) or not 0 <= doc_id < 10**12:
            raise ValueError(f"{where}: doc_id must be a whole number, found {excerpt(doc_id)}")
        instance_id = id_template.replace("{doc_id}", str(doc_id))
        if instance_id not in by_id.index or by_id.at[instance_id, "instance_hash"] != digest:
            if realign and digest in by_hash.index:
                instance_id = by_hash[digest]
            else:
                n_mismatch += 1
                if len(mismatches) < MAX_EXAMPLES:
                    text = doc[doc_fields[0]][:60]
                    mismatches.append(f"line {record['_line']} (doc_id {record['doc_id']}, {text!r}, label "
                                      f"{labels[gold]}) is not reference instance {instance_id}")
                continue
        row: dict[str, object] = {"instance_id": instance_id}
        if choices is not None:
            ll = _logliks(record, len(choices), where)
            if metric == "acc_norm":
                lengths = np.array([max(len(c), 1) for c in choices], dtype=float)
                row["pred"] = labels[mapping[int(np.argmax(ll / lengths))]]
            else:
                p = np.exp(ll - ll.max())
                p /= p.sum()
                probs = np.zeros(len(labels))
                for k, prob in enumerate(p):
                    probs[mapping[k]] += prob
                row["probs"] = probs.tolist()
        else:
            row["pred"] = _generated_label(record, labels, given_labels, where)
        rows.append(row)
    return _Parsed(pd.DataFrame(rows), mismatches, n_mismatch), used_filter


def _logliks(record: dict, n_choices: int, where: str) -> np.ndarray:
    """One finite log-likelihood per choice (numbers or numeric strings, never booleans)."""
    resps = record["filtered_resps"]
    if not isinstance(resps, list) or len(resps) != n_choices:
        raise ValueError(f"{where}: filtered_resps should hold one (loglikelihood, is_greedy) per choice")
    out = []
    for r in resps:
        value = r[0] if isinstance(r, list) and r and isinstance(r[0], list) else r
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{where}: filtered_resps are not log-likelihoods (found {excerpt(value)})")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise ValueError(f"{where}: filtered_resps are not log-likelihoods (found {excerpt(value)})") from None
        if not np.isfinite(number):
            raise ValueError(f"{where}: a log-likelihood must be a finite number, found {excerpt(value)}")
        out.append(number)
    return np.array(out)


def _gold(record: dict, choices: list[str] | None, mapping: dict[int, int] | None, labels: list[str], where: str) -> int:
    """Reference label index of the sample's target (a choice index or the text of a choice / label)."""
    target = str(record["target"]).strip()
    if choices is not None and target.isdigit() and int(target) < len(choices):
        return mapping[int(target)]
    names = [normalise(x) for x in labels]
    if choices is not None:
        norm_choices = [normalise(c) for c in choices]
        if normalise(target) in norm_choices:
            return mapping[norm_choices.index(normalise(target))]
    if normalise(target) in names:
        return names.index(normalise(target))
    raise ValueError(f"{where}: target {target[:40]!r} is not a choice index or label of {labels}")


def _generated_label(record: dict, labels: list[str], given: str | None, where: str) -> str:
    resps = record["filtered_resps"]
    answer = resps[0] if isinstance(resps, list) and resps else resps
    while isinstance(answer, list) and answer:
        answer = answer[0]
    norm = normalise(str(answer))
    names = {normalise(x): x for x in labels}
    if given and "=" in given:
        names.update({normalise(k): v.strip() for k, v in (p.split("=", 1) for p in given.split(","))})
    if norm in names:
        return names[norm]
    return f"unmatched answer: {str(answer)[:40]}"  # refused by validation with file, row and field


def _text(value: object, where: str, name: str, limit: int = 200) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"{where}: {name} must be text of at most {limit} characters, found {excerpt(value)}")
    return value


def _count(value: object, where: str, name: str, limit: int) -> int | None:
    """A whole number in 0..limit: an int, or a float with no fractional part; never a boolean."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) <= limit:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{where}: {name} must be a whole number from 0 to {limit:,}, found {excerpt(value)}")
    return value


def _results_metadata(run: HarnessRun, task: str) -> dict[str, object]:
    """The harness metadata of one run (model, revision, few-shot count, versions), each field type-checked."""
    if run.results is None:
        return {}
    where = str(run.results)
    try:
        raw = json.loads(read_text_capped(run.results, MAX_RESULTS_BYTES), object_pairs_hook=unique_keys)
    except UnsafeFile as exc:
        raise ValueError(str(exc)) from None
    except (ValueError, RecursionError):
        raise ValueError(f"{where}: not valid JSON (or a key twice)") from None
    if not isinstance(raw, dict):
        return {}
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    version = (raw.get("versions") or {}).get(task) if isinstance(raw.get("versions"), dict) else None
    if isinstance(version, bool) or not isinstance(version, (int, float, str, type(None))) or (
            isinstance(version, float) and not np.isfinite(version)):
        raise ValueError(f"{where}: versions.{task} must be a number or text, found {excerpt(version)}")
    out = {"model": _text(config.get("model_name") or raw.get("model_name") or config.get("model"), where, "model_name"),
           "model_revision": _text(config.get("model_revision"), where, "model_revision"),
           "model_sha": _text(config.get("model_sha"), where, "model_sha"),
           "model_num_parameters": _count(config.get("model_num_parameters"), where, "model_num_parameters", 10**13),
           "num_fewshot": _count((raw.get("n-shot") or {}).get(task) if isinstance(raw.get("n-shot"), dict) else None,
                                 where, "n-shot", 10**6),
           "task_version": _text(version, where, "version") if isinstance(version, str) else version,
           "harness_version": _text(raw.get("lm_eval_version"), where, "lm_eval_version", 40),
           "harness_git_hash": _text(raw.get("git_hash"), where, "git_hash", 80)}
    configs = raw.get("configs") if isinstance(raw.get("configs"), dict) else {}
    task_config = configs.get(task) if isinstance(configs.get(task), dict) else {}
    delimiter = _text(task_config.get("target_delimiter"), where, "target_delimiter", 20)
    if delimiter is not None:
        out["target_delimiter"] = delimiter
    return {k: v for k, v in out.items() if v not in (None, "")}


def import_lm_eval(sources: Sequence[str | Path], out: str | Path, reference: str | Path, *, task: str,
                   split: str, harness_task: str | None = None, labels: str | None = None,
                   filter_name: str | None = None, metric: str = "acc", id_template: str | None = None,
                   doc_fields: Sequence[str] | None = None, realign: bool = False, pretrain_seed: int | None = None,
                   finetune_seed: int | None = None, seed_map: str | Path | None = None,
                   metadata: Mapping[str, object] | None = None, revision: str | None = None) -> Path:
    """Convert harness samples (files, harness output folders, or a Hub details dataset id) into
    ``out/predictions.parquet`` and ``out/submission.yaml``; return the folder."""
    if metric not in ("acc", "acc_norm"):
        raise ValueError(f"--metric: expected 'acc' or 'acc_norm', found {metric!r}")
    if id_template is not None and not ID_TEMPLATE.match(id_template):
        raise ValueError(f"--id-template {excerpt(id_template)}: expected text with one {{doc_id}} and no other braces, "
                         f"e.g. 'validation-{{doc_id}}'")
    harness_task = harness_task or task
    folder = resolve(reference, revision)
    entry = read_manifest(folder)["tasks"].get(task)
    if entry is None or split not in entry["eval_sets"]:
        raise ValueError(f"{reference}: no task/evaluation set {task}/{split}")
    label_names = list(entry["label_names"])
    instances = load_instances(folder, task, split)
    fields = tuple(doc_fields) if doc_fields else DOC_FIELDS.get(task)
    if not fields:
        raise ValueError(f"task {task!r}: give --doc-fields (the text field(s) of the harness documents)")
    local = [s for s in sources if Path(s).exists()]
    paths = [Path(s) for s in local] + [download_details(str(s), harness_task) for s in sources if s not in local]
    files = find_runs(paths, harness_task)
    runs = harness_runs(files, pretrain_seed=pretrain_seed, finetune_seed=finetune_seed,
                        seed_map=read_seed_map(seed_map) if seed_map else None)
    frames, provenance, used_filters = [], [], set()
    max_records = max(MIN_RECORDS, MAX_RECORDS_PER_INSTANCE * len(instances))
    for run in runs:
        meta = _results_metadata(run, harness_task)
        parsed, used = _parse_run(run, label_names, instances, max_records, given_labels=labels, filter_name=filter_name,
                                  metric=metric, id_template=id_template or f"{split}-{{doc_id}}", doc_fields=fields,
                                  delimiter=str(meta.pop("target_delimiter", " ")), realign=realign)
        if parsed.n_mismatch:
            raise ValueError(f"{run.samples}: {parsed.n_mismatch} of {parsed.n_mismatch + len(parsed.frame)} samples "
                             f"are not the reference's instance at their doc_id (text or label differs), e.g. "
                             f"{'; '.join(parsed.mismatches)}; pass --realign to match them by content")
        used_filters.add(used)
        frames.append(parsed.frame.assign(pretrain_seed=run.pretrain_seed, finetune_seed=run.finetune_seed))
        provenance.append({"pretrain_seed": run.pretrain_seed, "finetune_seed": run.finetune_seed,
                           "samples": run.samples.name, **meta})
    models = {p.get("model") for p in provenance} - {None}
    params = {p.get("model_num_parameters") for p in provenance} - {None}
    info = {"model": _common_name(models) if models else common_model_name([Path(str(s)).name for s in sources]),
            "task": task, "split": split,
            "source": {"format": "lm-evaluation-harness samples", "harness_task": harness_task,
                       "filter": used_filters.pop(), "metric": metric},
            "runs": provenance}
    if len(params) == 1:
        info["params"] = params.pop()
    info.update({k: v for k, v in (metadata or {}).items() if v is not None})
    return write_submission(frames, out, info, reference, revision)


def _common_name(models: set[str]) -> str:
    """The model name without its seed suffix when all runs share it ("org/bert-seed1", "org/bert-seed2" -> "org/bert")."""
    stripped = {SEED_SUFFIXES[1].sub("", SEED_SUFFIXES[0].sub("", m)) for m in models}
    return stripped.pop() if len(stripped) == 1 else ", ".join(sorted(models))
