"""Finetune runs of one size from a spec: load each pretrained model, finetune, evaluate every checkpoint, write a
shard per run.

Several runs of one size train in one process: BERT-architecture models with their weights stacked in one loop
(:mod:`instdecay.generate.stacked`), other architectures one after the other; either way the task data is loaded and
tokenised once. Every run's randomness (classifier-head initialisation, data order, dropout) comes from its own
streams, derived from (size, pretraining seed, finetuning seed) in the spec's default ``nested`` seed design, or from
the finetuning seed alone in the ``crossed`` design (:mod:`instdecay.generate.seeds`). Matmuls run in bf16
autocast where the hardware computes bf16 natively (``precision="auto"``).

Needs the ``[generate]`` extra (torch, transformers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from .. import __version__
from ..release.shards import Checkpoint, RunMeta, TaskInfo, make_predictions, write_shard, write_task
from .data import Examples, instances_table, load_source, task_info
from .device import Precision, autocast, default_device, describe_device, resolve_precision
from .quiet import expected_new_weights
from .seeds import run_seeds
from .spec import Pretrained, Size, Spec, SpecError
from .stacked import DropoutMasks, StackedBert, stackable

def count_parameters(model: torch.nn.Module, embeddings: bool = True) -> int:
    params = {n: p.numel() for n, p in model.named_parameters()}
    if embeddings:
        return sum(params.values())
    return sum(v for n, v in params.items() if "embeddings" not in n)


def tokenize(tokenizer, ex: Examples, max_length: int) -> tuple[list[list[int]], list[list[int]] | None]:
    enc = tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=max_length)
    return enc["input_ids"], enc.get("token_type_ids")


def _batch(tokenizer, ids: list[list[int]], types: list[list[int]] | None, rows, device) -> dict[str, torch.Tensor]:
    features = [{"input_ids": ids[r], **({"token_type_ids": types[r]} if types is not None else {})} for r in rows]
    batch = tokenizer.pad(features, return_tensors="pt")  # dynamic padding to the longest in the batch
    return {k: v.to(device) for k, v in batch.items()}


@torch.inference_mode()
def predict_probs(model, tokenizer, ids, types, batch_size: int, device, sort_by_length: bool = True,
                  progress: bool = False, desc: str = "eval", precision: str = "fp32") -> np.ndarray:
    """Class probabilities (n, C) in the input order, or (K, n, C) for a :class:`StackedBert`; batches are
    length-sorted and padded dynamically."""
    model.eval()
    n = len(ids)
    order = np.argsort([len(x) for x in ids], kind="stable") if sort_by_length else np.arange(n)
    stacked = isinstance(model, StackedBert)
    n_labels = model.config.num_labels
    out = np.empty((model.n_runs, n, n_labels) if stacked else (n, n_labels), dtype=np.float32)
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        rows = order[start : start + batch_size]
        batch = _batch(tokenizer, ids, types, rows, device)
        with autocast(device, precision):
            if stacked:
                types_ = batch.get("token_type_ids", torch.zeros_like(batch["input_ids"]))
                logits = model(batch["input_ids"], types_, batch["attention_mask"])
            else:
                logits = model(**batch).logits
        out[..., rows, :] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


def _load_model(path: str, p: Pretrained, n_labels: int, head_seed: int):
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=p.revision)
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot load tokenizer from {path!r}: {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token is None:  # decoder-only models (Pythia) have no padding token
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(head_seed)  # the randomly initialised classifier head depends on this only
    with expected_new_weights():  # the new classifier head is expected: no load report on every run
        model = AutoModelForSequenceClassification.from_pretrained(path, revision=p.revision, num_labels=n_labels)
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


@dataclass
class _Run:
    """One finetuning run of the group: its pretrained model, seeds, and what it has produced so far."""

    pretrained: Pretrained
    finetune_seed: int
    seeds: dict[str, int]
    tokenizer: object
    model: torch.nn.Module
    tables: list[pa.Table]

    def meta_base(self, spec: Spec, size: Size, n_params: int) -> dict[str, object]:
        return dict(task=spec.task.name, family=size.family, size=size.name, n_params=n_params,
                    model=self.pretrained.label, pretrain_seed=self.pretrained.seed,
                    finetune_seed=self.finetune_seed, revision=self.pretrained.revision or "",
                    seed_design=spec.seed_design, stream_seeds=self.seeds)


@dataclass
class _Data:
    """The task's training and evaluation data, tokenised once for the whole group."""

    info: TaskInfo
    train: Examples
    evals: dict[str, Examples]
    train_tok: tuple
    eval_tok: dict[str, tuple]
    labels: torch.Tensor


def _same_vocabulary(tokenizers: Sequence) -> bool:
    first = tokenizers[0]
    return all(type(t) is type(first) and t.get_vocab() == first.get_vocab()
               and getattr(t, "do_lower_case", None) == getattr(first, "do_lower_case", None) for t in tokenizers[1:])


def run_finetune(spec: Spec, size_name: str, pretrain_seed: int, finetune_seed: int, *, device: str | None = None,
                 progress: bool = True, precision: Precision = "auto") -> Path:
    """Finetune one run, evaluate each checkpoint on every evaluation set, write its shard; return the parquet path."""
    return run_finetune_group(spec, size_name, [(pretrain_seed, finetune_seed)], device=device, progress=progress,
                              precision=precision)[0]


def run_finetune_group(spec: Spec, size_name: str, runs: Sequence[tuple[int, int]], *, device: str | None = None,
                       progress: bool = True, precision: Precision = "auto", stack: bool = True) -> list[Path]:
    """Finetune the runs ``[(pretrain_seed, finetune_seed), ...]`` of one size in one process (stacked in one loop
    when the models allow it and ``stack``), write a shard per run; return the parquet paths in the given order."""
    start_time = time.perf_counter()
    size: Size = spec.size(size_name)
    pretrained = {p.seed: p for p in size.pretrained}
    for p_seed, f_seed in runs:
        if p_seed not in pretrained:
            raise SpecError(f"{spec.path}: size {size_name!r} has no pretraining seed {p_seed}")
        if f_seed not in spec.finetune_seeds:
            raise SpecError(f"{spec.path}: finetuning seed {f_seed} is not in finetune_seeds {list(spec.finetune_seeds)}")
        path = spec.pretrained_path(size, pretrained[p_seed])
        if pretrained[p_seed].pretrain is not None and not Path(path).exists():
            raise SpecError(f"{path}: pretrained model missing; run `instdecay generate pretrain` for {size_name} seed "
                            f"{p_seed}")
    if len(set(runs)) != len(runs):
        raise SpecError(f"runs {list(runs)}: a run is listed twice")
    hp = size.hyperparameters
    dev = torch.device(device) if device else default_device()
    mode = resolve_precision(dev, precision)
    torch.use_deterministic_algorithms(True, warn_only=True)

    info = task_info(spec.task)
    train = load_source(spec.task.train, spec.task)
    if (train.gold >= len(info.label_names)).any():
        raise SpecError(f"{spec.path}: training labels must be model classes, not collapsed labels")
    evals = {name: load_source(src, spec.task) for name, src in spec.task.eval_sets.items()}
    write_task(spec.output, info, instances_table(spec.task, evals))

    group = []
    for p_seed, f_seed in runs:
        seeds = run_seeds(spec.seed_design, size.name, p_seed, f_seed)
        tokenizer, model = _load_model(spec.pretrained_path(size, pretrained[p_seed]), pretrained[p_seed],
                                       len(info.label_names), seeds["head"])
        group.append(_Run(pretrained[p_seed], f_seed, seeds, tokenizer, model, []))
    tokenizer = group[0].tokenizer
    data = _Data(info, train, evals, tokenize(tokenizer, train, hp.max_length),
                 {name: tokenize(tokenizer, ex, hp.max_length) for name, ex in evals.items()}, torch.tensor(train.gold))
    stacked = stack and stackable([r.model.config for r in group]) and _same_vocabulary([r.tokenizer for r in group])
    n_params = count_parameters(group[0].model)
    common = dict(precision=mode, runs_in_process=len(group), hyperparameters=asdict(hp),
                  versions={pkg: version(pkg) for pkg in ("torch", "transformers", "datasets", "numpy")}
                  | {"instdecay": __version__}, spec_hash=spec.hash)
    if stacked:
        checkpoints = _train_stacked(group, data, size, dev, mode, progress)
        wall = (time.perf_counter() - start_time) / len(group)
        return [write_shard(spec.output, RunMeta(**r.meta_base(spec, size, n_params), checkpoints=checkpoints,
                                                 device=describe_device(dev), wall_time_s=round(wall, 3), **common),
                            pa.concat_tables(r.tables)) for r in group]
    paths, data_tokenizer = [], tokenizer
    for r in group:
        run_start = time.perf_counter()
        if not _same_vocabulary([data_tokenizer, r.tokenizer]):
            data_tokenizer = r.tokenizer
            data = _Data(info, train, evals, tokenize(r.tokenizer, train, hp.max_length),
                         {name: tokenize(r.tokenizer, ex, hp.max_length) for name, ex in evals.items()}, data.labels)
        checkpoints = _train_one(r, data, size, dev, mode, progress)
        wall = time.perf_counter() - run_start + (run_start - start_time if r is group[0] else 0.0)
        paths.append(write_shard(spec.output, RunMeta(**r.meta_base(spec, size, count_parameters(r.model)),
                                                      checkpoints=checkpoints, device=describe_device(dev),
                                                      wall_time_s=round(wall, 3), **common), pa.concat_tables(r.tables)))
        r.model = None  # free it before the next run
    return paths


def _schedule(n_train: int, hp) -> tuple[int, int, dict[int, float]]:
    steps_per_epoch = math.ceil(n_train / hp.batch_size)
    total_steps = round(hp.epochs * steps_per_epoch)
    return steps_per_epoch, total_steps, {round(c * steps_per_epoch): c for c in hp.checkpoints}


def _evaluate(runs: list[_Run], model, data: _Data, size: Size, ckpt: int, dev, mode: str, progress: bool) -> None:
    """Predict every evaluation set with the model (one run, or the stacked runs) and keep each run's rows."""
    hp = size.hyperparameters
    for name, ex in data.evals.items():
        probs = predict_probs(model, runs[0].tokenizer, *data.eval_tok[name], hp.eval_batch_size, dev,
                              progress=progress, desc=f"eval {name}", precision=mode)
        per_run = probs if isinstance(model, StackedBert) else probs[None]
        for r, p in zip(runs, per_run):
            stub = RunMeta(task=data.info.task, family=size.family, size=size.name, n_params=0, model="",
                           pretrain_seed=r.pretrained.seed, finetune_seed=r.finetune_seed, checkpoints=())
            r.tables.append(make_predictions(stub, data.info, ckpt, name, ex.instance_ids, ex.gold, p))


def _train_one(r: _Run, data: _Data, size: Size, dev, mode: str, progress: bool) -> tuple[Checkpoint, ...]:
    """One run with the ``transformers`` model (any architecture)."""
    hp = size.hyperparameters
    model = r.model.to(dev)
    steps_per_epoch, total_steps, eval_steps = _schedule(len(data.train), hp)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "ln_")
    groups = [
        {"params": [w for n, w in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": hp.weight_decay},
        {"params": [w for n, w in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=hp.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(hp.warmup * total_steps), total_steps)
    order_rng = torch.Generator().manual_seed(r.seeds["order"])
    torch.manual_seed(r.seeds["dropout"])
    checkpoints: list[Checkpoint] = []
    order = torch.empty(0, dtype=torch.long)
    bar = tqdm(total=total_steps, desc=f"{size.name} p{r.pretrained.seed} f{r.finetune_seed}", disable=not progress)
    for step in range(total_steps):
        if step % steps_per_epoch == 0:
            order = torch.randperm(len(data.train), generator=order_rng)
        model.train()
        k = step % steps_per_epoch
        rows = order[k * hp.batch_size : (k + 1) * hp.batch_size].numpy()
        batch = _batch(r.tokenizer, *data.train_tok, rows, dev)
        with autocast(dev, mode):
            loss = model(**batch, labels=data.labels[rows].to(dev)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step + 1 in eval_steps:
            checkpoints.append(Checkpoint(len(checkpoints) + 1, eval_steps[step + 1], step + 1))
            _evaluate([r], model, data, size, len(checkpoints), dev, mode, progress)
    bar.close()
    return tuple(checkpoints)


def _train_stacked(group: list[_Run], data: _Data, size: Size, dev, mode: str, progress: bool) -> tuple[Checkpoint, ...]:
    """All runs of the group in one loop with stacked weights; each keeps its data order, dropout and clipping."""
    hp = size.hyperparameters
    model = StackedBert([r.model for r in group]).to(dev)
    for r in group:
        r.model = None
    steps_per_epoch, total_steps, eval_steps = _schedule(len(data.train), hp)
    optimizer = torch.optim.AdamW(model.parameter_groups(hp.weight_decay), lr=hp.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(hp.warmup * total_steps), total_steps)
    order_rngs = [torch.Generator().manual_seed(r.seeds["order"]) for r in group]
    dropout_rngs = [torch.Generator(device=dev).manual_seed(r.seeds["dropout"]) for r in group]
    train = padded(*data.train_tok, group[0].tokenizer.pad_token_id)
    checkpoints: list[Checkpoint] = []
    orders: list[torch.Tensor] = []
    names = ",".join(f"p{r.pretrained.seed}f{r.finetune_seed}" for r in group)
    bar = tqdm(total=total_steps, desc=f"{size.name} {names}", disable=not progress)
    for step in range(total_steps):
        if step % steps_per_epoch == 0:
            orders = [torch.randperm(len(data.train), generator=g) for g in order_rngs]
        model.train()
        k = step % steps_per_epoch
        rows = [o[k * hp.batch_size : (k + 1) * hp.batch_size].numpy() for o in orders]
        lengths = [int(train[2][rr].max()) for rr in rows]
        batch = _stacked_batch(train, rows, max(lengths), dev)
        masks = DropoutMasks(model, dropout_rngs, batch[2])
        labels = torch.stack([data.labels[rr] for rr in rows]).to(dev)
        with autocast(dev, mode):
            logits = model(*batch, dropout=masks)
        losses = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none")
        loss = losses.view(labels.shape).mean(dim=1).sum()  # each run's mean loss; runs share no weights
        loss.backward()
        model.finish_backward(max_norm=1.0)
        optimizer.step()
        scheduler.step()
        model.zero_grad()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item() / len(group):.3f}")
        if step + 1 in eval_steps:
            checkpoints.append(Checkpoint(len(checkpoints) + 1, eval_steps[step + 1], step + 1))
            _evaluate(group, model, data, size, len(checkpoints), dev, mode, progress)
    bar.close()
    return tuple(checkpoints)


def padded(ids: list[list[int]], types: list[list[int]] | None, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids and types of every example right-padded to the longest (N, T), and each example's length."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    filled = np.arange(lengths.max(initial=1)) < lengths[:, None]
    out_ids = np.full(filled.shape, pad, dtype=np.int64)
    out_ids[filled] = np.concatenate(ids) if ids else []
    out_types = np.zeros(filled.shape, dtype=np.int64)
    if types is not None:
        out_types[filled] = np.concatenate(types)
    return out_ids, out_types, lengths


def _stacked_batch(train: tuple[np.ndarray, np.ndarray, np.ndarray], rows: list[np.ndarray], length: int,
                   dev) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, B, T) input ids, token types and attention mask: run k's rows, right-padded to the common length."""
    ids, types, lengths = train
    index = np.stack(rows)
    attention = np.arange(length) < lengths[index][..., None]
    return (torch.from_numpy(ids[index, :length]).to(dev), torch.from_numpy(types[index, :length]).to(dev),
            torch.from_numpy(attention.astype(np.int64)).to(dev))
