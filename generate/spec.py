"""Experiment specs: a YAML file that declares task data, the model ladder, seeds and hyperparameters.

Validated into frozen dataclasses with one-line errors naming the file and the field. Relative paths in a
spec are resolved against the spec file's folder. See ``generate/specs/*.yaml`` for complete examples.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..loaders import schema
from .seeds import DESIGNS


class SpecError(ValueError):
    """An invalid experiment spec; the message names the file and the field."""


@dataclass(frozen=True)
class DataSource:
    """Rows of a table loaded with ``datasets.load_dataset(dataset, name, data_files=..., split=..., **kwargs)``.

    ``rows_from`` keeps the rows of one part (``pool`` or ``heldout``) of a held-out split file
    (:mod:`instdecay.generate.holdout`, checked against the data file's sha256); ``rows`` is then a Python slice
    string over the rows kept (``"10000:"``); ``sample`` draws that many rows (seeded by ``sample_seed``) after
    slicing. ``original_split`` names the benchmark split the rows come from.
    """

    dataset: str
    original_split: str
    name: str | None = None
    data_files: str | None = None
    split: str = "train"
    kwargs: dict[str, object] = field(default_factory=dict)
    rows: str | None = None
    sample: int | None = None
    sample_seed: int = 0
    label_names: tuple[str, ...] | None = None  # names of this source's integer labels, when they differ from the task's
    drop_labels: tuple[int, ...] = ()  # integer labels whose rows are dropped (e.g. SNLI's -1, no gold label)
    rows_from: tuple[str, str] | None = None  # (held-out split file, "pool" | "heldout"): rows chosen before `rows`


@dataclass(frozen=True)
class Task:
    name: str
    label_names: tuple[str, ...]
    text_fields: tuple[str, ...]
    label_field: str
    train: DataSource
    eval_sets: dict[str, DataSource]
    collapsed_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Pretraining:
    """Masked-language-model pretraining "here": from scratch (a BERT of the given shape, with a WordPiece
    vocabulary trained on the corpus), or continued from ``init`` (a pretrained BERT, Hub id / path /
    ``package:``), keeping its first ``layers`` layers: a smaller model of the same family, whose pretraining seed
    is that of the continued (task-adaptive) pretraining."""

    layers: int
    hidden: int | None
    heads: int | None
    intermediate: int | None
    tokenizer: str | None  # folder with a WordPiece vocab.txt; trained on the corpus when absent; init's when None
    corpus: DataSource
    text_field: str
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    warmup: float = 0.06
    max_length: int = 48
    mask_prob: float = 0.15
    vocab_size: int = 8192
    init: str | None = None


@dataclass(frozen=True)
class Pretrained:
    """One pretraining seed of a size: a Hub id or local path (``model``), or ``pretrain`` here."""

    seed: int
    model: str | None = None
    revision: str | None = None
    pretrain: Pretraining | None = None
    label: str = ""  # how run metadata names the model: as written in the spec, never a local absolute path


@dataclass(frozen=True)
class Hyperparameters:
    lr: float
    batch_size: int
    epochs: float
    max_length: int
    warmup: float = 0.1
    weight_decay: float = 0.01
    checkpoints: tuple[float, ...] = (3.0, 10 / 3, 11 / 3, 4.0)  # epochs at which to evaluate
    eval_batch_size: int = 128


@dataclass(frozen=True)
class Size:
    name: str
    family: str
    pretrained: tuple[Pretrained, ...]
    hyperparameters: Hyperparameters


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    task: Task
    sizes: tuple[Size, ...]
    finetune_seeds: tuple[int, ...]
    output: Path  # shard folder
    work_dir: Path  # pretrained models and caches
    hash: str = ""  # of the spec's content as written (not its location or comments), recorded in every shard
    # "nested": every run's head initialisation, data order and dropout come from (size, pretraining seed, finetuning
    # seed), so runs are independent; "crossed": from the finetuning seed alone, shared by every pretrained model.
    seed_design: str = "nested"

    def size(self, name: str) -> Size:
        for s in self.sizes:
            if s.name == name:
                return s
        raise SpecError(f"{self.path}: no size {name!r}; sizes are {[s.name for s in self.sizes]}")

    def pretrained_path(self, size: Size, p: Pretrained) -> str:
        """Where the model of pretraining seed ``p`` is: its Hub id/path, or the folder pretraining writes."""
        if p.model is not None:
            return p.model
        return str(self.work_dir / "pretrained" / size.name / f"seed{p.seed}")


def content_hash(raw: dict) -> str:
    """sha256 of the parsed YAML (where outputs go does not count), so moving a checkout keeps the hash."""
    payload = json.dumps({k: v for k, v in raw.items() if k not in ("output", "work_dir")}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class _Reader:
    """Typed access to a YAML mapping with errors that name the spec file and the field path."""

    def __init__(self, path: Path, data: object, where: str = ""):
        self.path, self.where = path, where
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, found {type(data).__name__}")
        self.data = data

    def fail(self, message: str):
        raise SpecError(f"{self.path}: {self.where or 'top level'}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default=..., check=None):
        where = f"{self.where}.{key}" if self.where else key
        if key not in self.data:
            if default is ...:
                raise SpecError(f"{self.path}: {where}: required field is missing")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise SpecError(f"{self.path}: {where}: expected {names}, found {value!r}")
        if check is not None and not check(value):
            raise SpecError(f"{self.path}: {where}: invalid value {value!r}")
        return value

    def sub(self, key: str) -> _Reader:
        return _Reader(self.path, self.get(key, dict), f"{self.where}.{key}" if self.where else key)

    def unknown(self, allowed: set[str]) -> None:
        extra = {k for k in self.data if not str(k).startswith("x-")} - allowed  # x-*: free keys for YAML anchors
        if extra:
            self.fail(f"unknown field(s) {sorted(extra)}; allowed: {sorted(allowed)}")


def _path(base: Path, value: str | None) -> str | None:
    """Resolve a path relative to the spec's folder; ``package:<module>/<sub/path>`` points inside an installed
    Python package (e.g. a model shipped on PyPI); anything else that does not exist is kept (a Hub id)."""
    if value is not None and value.startswith("package:"):
        from importlib.resources import files

        module, _, sub = value[len("package:"):].partition("/")
        try:
            return str(files(module).joinpath(sub))
        except ModuleNotFoundError:
            raise SpecError(f"{value}: Python package {module!r} is not installed") from None
    if value is None or "://" in value or Path(value).is_absolute():
        return value
    candidate = Path(os.path.normpath(base / value))
    return str(candidate) if candidate.exists() or value.startswith(".") else value


def _source(r: _Reader, base: Path) -> DataSource:
    r.unknown({"dataset", "name", "data_files", "split", "kwargs", "rows", "sample", "sample_seed", "original_split",
               "label_names", "drop_labels", "rows_from"})
    rows = r.get("rows", str, None)
    if rows is not None:
        try:
            slice(*[int(x) if x else None for x in rows.split(":")])
        except (TypeError, ValueError):
            r.fail(f"rows: expected a slice like '10000:' or ':5000', found {rows!r}")
    rows_from = None
    if "rows_from" in r.data:
        part = r.sub("rows_from")
        part.unknown({"file", "key"})
        rows_from = (_path(base, part.get("file", str)), part.get("key", str, check=lambda v: v in ("pool", "heldout")))
    return DataSource(
        rows_from=rows_from,
        dataset=r.get("dataset", str), name=r.get("name", str, None),
        data_files=_path(base, r.get("data_files", str, None)), split=r.get("split", str, "train"),
        kwargs=r.get("kwargs", dict, {}), rows=rows, sample=r.get("sample", int, None, lambda v: v > 0),
        sample_seed=r.get("sample_seed", int, 0), original_split=r.get("original_split", str),
        label_names=tuple(str(x) for x in r.get("label_names", list)) if "label_names" in r.data else None,
        drop_labels=tuple(r.get("drop_labels", list, [])),
    )


def _hyper(r: _Reader) -> Hyperparameters:
    r.unknown({"lr", "batch_size", "epochs", "max_length", "warmup", "weight_decay", "checkpoints", "eval_batch_size"})
    positive = lambda v: v > 0  # noqa: E731
    epochs = r.get("epochs", float, check=positive)
    checkpoints = tuple(float(c) for c in r.get("checkpoints", list, [3.0, 10 / 3, 11 / 3, 4.0]))
    if not checkpoints or any(c <= 0 or c > epochs for c in checkpoints) or list(checkpoints) != sorted(set(checkpoints)):
        r.fail(f"checkpoints: expected increasing epochs in (0, {epochs}], found {list(checkpoints)}")
    return Hyperparameters(
        lr=r.get("lr", float, check=positive), batch_size=r.get("batch_size", int, check=positive), epochs=epochs,
        max_length=r.get("max_length", int, check=lambda v: 8 <= v <= 512), warmup=r.get("warmup", float, 0.1),
        weight_decay=r.get("weight_decay", float, 0.01), checkpoints=checkpoints,
        eval_batch_size=r.get("eval_batch_size", int, 128, positive),
    )


def _pretraining(r: _Reader, base: Path) -> Pretraining:
    r.unknown({"layers", "hidden", "heads", "intermediate", "tokenizer", "corpus", "text_field", "steps",
               "batch_size", "lr", "warmup", "max_length", "mask_prob", "vocab_size", "init"})
    init = _path(base, r.get("init", str, None))
    if init is not None:  # the shape and vocabulary are the init model's; only the depth is chosen
        shape = [k for k in ("hidden", "heads", "intermediate", "tokenizer") if k in r.data]
        if shape:
            r.fail(f"{shape}: not allowed with 'init' (the shape and tokenizer are the init model's)")
        hidden = heads = intermediate = tokenizer = None
    else:
        hidden, heads = r.get("hidden", int, check=lambda v: v > 0), r.get("heads", int, check=lambda v: v > 0)
        if hidden % heads:
            r.fail(f"hidden ({hidden}) must be divisible by heads ({heads})")
        intermediate, tokenizer = r.get("intermediate", int, 4 * hidden), _path(base, r.get("tokenizer", str))
    return Pretraining(
        layers=r.get("layers", int, check=lambda v: v > 0), hidden=hidden, heads=heads, init=init,
        intermediate=intermediate, tokenizer=tokenizer,
        corpus=_source(r.sub("corpus"), base), text_field=r.get("text_field", str),
        steps=r.get("steps", int, check=lambda v: v > 0), batch_size=r.get("batch_size", int, 64),
        lr=r.get("lr", float, 1e-3), warmup=r.get("warmup", float, 0.06), max_length=r.get("max_length", int, 48),
        mask_prob=r.get("mask_prob", float, 0.15, lambda v: 0 < v < 1),
        vocab_size=r.get("vocab_size", int, 8192, lambda v: v >= 100),
    )


def _label(model: str | None, raw_pretrain: dict | None, pretraining: Pretraining | None, seed: int) -> str:
    if model is not None:
        return model if not Path(model).is_absolute() else Path(model).name
    if pretraining.init is not None:
        return (f"{raw_pretrain['init']}, first {pretraining.layers} layer(s), continued MLM "
                f"({pretraining.steps} steps, seed {seed})")
    return (f"BERT L{pretraining.layers}-H{pretraining.hidden} pretrained here (MLM, {pretraining.steps} steps, "
            f"seed {seed})")


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    base = path.resolve().parent
    r = _Reader(path, raw)
    r.unknown({"name", "task", "sizes", "finetune_seeds", "output", "work_dir", "seed_design"})
    name = r.get("name", str)

    t = r.sub("task")
    t.unknown({"name", "label_names", "text_fields", "label_field", "train", "eval_sets", "collapsed_labels"})
    task_name = t.get("name", str, check=lambda v: bool(schema.NAME_PATTERN.match(v)))
    label_names = tuple(str(x) for x in t.get("label_names", list, check=lambda v: len(v) >= 2))
    text_fields = tuple(t.get("text_fields", list, check=lambda v: 1 <= len(v) <= 2))
    eval_reader = t.sub("eval_sets")
    eval_sets = {}
    for set_name in eval_reader.data:
        if not schema.NAME_PATTERN.match(str(set_name)):
            eval_reader.fail(f"evaluation-set name {set_name!r} must be letters, digits or '_'")
        eval_sets[str(set_name)] = _source(eval_reader.sub(set_name), base)
    if not eval_sets:
        eval_reader.fail("needs at least one evaluation set")
    task = Task(task_name, label_names, text_fields, t.get("label_field", str), _source(t.sub("train"), base),
                eval_sets, {k: tuple(v) for k, v in t.get("collapsed_labels", dict, {}).items()})

    sizes = []
    raw_sizes = r.get("sizes", list, check=bool)
    for k, raw_size in enumerate(raw_sizes):
        s = _Reader(path, raw_size, f"sizes[{k}]")
        s.unknown({"name", "family", "pretrained", "hyperparameters"})
        size_name = s.get("name", str, check=lambda v: bool(schema.SIZE_PATTERN.match(v)))
        pretrained = []
        for j, raw_p in enumerate(s.get("pretrained", list, check=bool)):
            p = _Reader(path, raw_p, f"sizes[{k}].pretrained[{j}]")
            p.unknown({"seed", "model", "revision", "pretrain"})
            model, pre = p.get("model", str, None), p.data.get("pretrain")
            if (model is None) == (pre is None):
                p.fail("give exactly one of 'model' (Hub id or local path) and 'pretrain' (train it here)")
            pretraining = _pretraining(p.sub("pretrain"), base) if pre is not None else None
            pretrained.append(Pretrained(p.get("seed", int), _path(base, model), p.get("revision", str, None),
                                         pretraining, _label(model, pre, pretraining, p.get("seed", int))))
        seeds = [p.seed for p in pretrained]
        if len(set(seeds)) != len(seeds):
            s.fail(f"pretrained: duplicate pretraining seeds {seeds}")
        sizes.append(Size(size_name, s.get("family", str, "bert"), tuple(pretrained), _hyper(s.sub("hyperparameters"))))
    names = [s.name for s in sizes]
    if len(set(names)) != len(names):
        r.fail(f"sizes: duplicate size names {names}")
    finetune_seeds = tuple(r.get("finetune_seeds", list, check=lambda v: bool(v) and all(isinstance(x, int) for x in v)))
    return Spec(name, path, task, tuple(sizes), finetune_seeds,  # output folders are relative to the spec file
                output=Path(os.path.normpath(base / r.get("output", str, f"shards/{name}"))),
                work_dir=Path(os.path.normpath(base / r.get("work_dir", str, f"work/{name}"))), hash=content_hash(raw),
                seed_design=r.get("seed_design", str, "nested", lambda v: v in DESIGNS))
