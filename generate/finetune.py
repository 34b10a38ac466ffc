"""One run: finetune one pretrained model with one finetuning seed, evaluate every checkpoint, write a shard.

Needs the ``[generate]`` extra (torch, transformers).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from .. import __version__
from ..release.shards import Checkpoint, RunMeta, make_predictions, write_shard, write_task
from .data import Examples, instances_table, load_source, task_info
from .device import default_device, describe_device
from .quiet import expected_new_weights
from .spec import Pretrained, Size, Spec, SpecError

# Separate streams for the classifier-head initialisation and the data order, as the paper did.
_HEAD_STREAM, _ORDER_STREAM, _DROPOUT_STREAM = 1, 2, 3


def stream_seed(finetune_seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([finetune_seed, stream]).generate_state(1)[0])


def count_parameters(model: torch.nn.Module, embeddings: bool = True) -> int:
    params = {n: p.numel() for n, p in model.named_parameters()}
    if embeddings:
        return sum(params.values())
    return sum(v for n, v in params.items() if "embeddings" not in n)


def tokenize(tokenizer, ex: Examples, max_length: int) -> list[list[int]]:
    enc = tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=max_length)
    return enc["input_ids"], enc.get("token_type_ids")


def _batch(tokenizer, ids: list[list[int]], types: list[list[int]] | None, rows, device) -> dict[str, torch.Tensor]:
    features = [{"input_ids": ids[r], **({"token_type_ids": types[r]} if types is not None else {})} for r in rows]
    batch = tokenizer.pad(features, return_tensors="pt")  # dynamic padding to the longest in the batch
    return {k: v.to(device) for k, v in batch.items()}


@torch.inference_mode()
def predict_probs(model, tokenizer, ids, types, batch_size: int, device, sort_by_length: bool = True,
                  progress: bool = False, desc: str = "eval") -> np.ndarray:
    """Class probabilities (n, C) in the input order; batches are length-sorted and padded dynamically."""
    model.eval()
    n = len(ids)
    order = np.argsort([len(x) for x in ids], kind="stable") if sort_by_length else np.arange(n)
    out = np.empty((n, model.config.num_labels), dtype=np.float32)
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        rows = order[start : start + batch_size]
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            logits = model(**_batch(tokenizer, ids, types, rows, device)).logits
        out[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


def _load_model(path: str, p: Pretrained, n_labels: int, head_seed: int, device):
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
    return tokenizer, model.to(device)


def run_finetune(spec: Spec, size_name: str, pretrain_seed: int, finetune_seed: int, *, device: str | None = None,
                 progress: bool = True) -> Path:
    """Finetune, evaluate each checkpoint on every evaluation set, write the shard; return its parquet path."""
    start_time = time.perf_counter()
    size: Size = spec.size(size_name)
    matches = [p for p in size.pretrained if p.seed == pretrain_seed]
    if not matches:
        raise SpecError(f"{spec.path}: size {size_name!r} has no pretraining seed {pretrain_seed}")
    if finetune_seed not in spec.finetune_seeds:
        raise SpecError(f"{spec.path}: finetuning seed {finetune_seed} is not in finetune_seeds {list(spec.finetune_seeds)}")
    p = matches[0]
    path = spec.pretrained_path(size, p)
    if p.pretrain is not None and not Path(path).exists():
        raise SpecError(f"{path}: pretrained model missing; run `instdecay generate pretrain` for {size_name} seed {pretrain_seed}")
    hp = size.hyperparameters
    dev = torch.device(device) if device else default_device()
    torch.use_deterministic_algorithms(True, warn_only=True)

    info = task_info(spec.task)
    train = load_source(spec.task.train, spec.task)
    evals = {name: load_source(src, spec.task) for name, src in spec.task.eval_sets.items()}
    write_task(spec.output, info, instances_table(spec.task, evals))

    tokenizer, model = _load_model(path, p, len(info.label_names), stream_seed(finetune_seed, _HEAD_STREAM), dev)
    train_ids, train_types = tokenize(tokenizer, train, hp.max_length)
    eval_tok = {name: tokenize(tokenizer, ex, hp.max_length) for name, ex in evals.items()}
    labels = torch.tensor(train.gold)
    if (train.gold >= len(info.label_names)).any():
        raise SpecError(f"{spec.path}: training labels must be model classes, not collapsed labels")

    steps_per_epoch = math.ceil(len(train) / hp.batch_size)
    total_steps = round(hp.epochs * steps_per_epoch)
    eval_steps = {round(c * steps_per_epoch): c for c in hp.checkpoints}
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "ln_")
    groups = [
        {"params": [w for n, w in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": hp.weight_decay},
        {"params": [w for n, w in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=hp.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(hp.warmup * total_steps), total_steps)
    order_rng = torch.Generator().manual_seed(stream_seed(finetune_seed, _ORDER_STREAM))
    torch.manual_seed(stream_seed(finetune_seed, _DROPOUT_STREAM))

    tables, checkpoints = [], []
    meta_base = dict(task=spec.task.name, family=size.family, size=size.name,
                     n_params=count_parameters(model), model=p.label, pretrain_seed=pretrain_seed,
                     finetune_seed=finetune_seed, revision=p.revision or "")
    step, order = 0, torch.empty(0, dtype=torch.long)
    bar = tqdm(total=total_steps, desc=f"{size.name} p{pretrain_seed} f{finetune_seed}", disable=not progress)
    while step < total_steps:
        if step % steps_per_epoch == 0:
            order = torch.randperm(len(train), generator=order_rng)
        model.train()
        k = step % steps_per_epoch
        rows = order[k * hp.batch_size : (k + 1) * hp.batch_size].numpy()
        batch = _batch(tokenizer, train_ids, train_types, rows, dev)
        loss = model(**batch, labels=labels[rows].to(dev)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step in eval_steps:
            ckpt = len(checkpoints) + 1
            checkpoints.append(Checkpoint(ckpt, eval_steps[step], step))
            meta = RunMeta(**meta_base, checkpoints=tuple(checkpoints))
            for name, ex in evals.items():
                probs = predict_probs(model, tokenizer, *eval_tok[name], hp.eval_batch_size, dev,
                                      progress=progress, desc=f"eval {name}")
                tables.append(make_predictions(meta, info, ckpt, name, ex.instance_ids, ex.gold, probs))
    bar.close()

    meta = RunMeta(**meta_base, checkpoints=tuple(checkpoints), hyperparameters=asdict(hp),
                   versions={pkg: version(pkg) for pkg in ("torch", "transformers", "datasets", "numpy")} | {"instdecay": __version__},
                   device=describe_device(dev), spec_hash=spec.hash, wall_time_s=round(time.perf_counter() - start_time, 3))
    return write_shard(spec.output, meta, pa.concat_tables(tables))

