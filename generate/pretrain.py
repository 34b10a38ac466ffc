"""Pretrain a BERT of a given shape from scratch with masked-language modelling ("pretrain here").

The vocabulary projection is applied only at masked positions (the loss needs nothing else), which is what
makes small-model pretraining affordable on a CPU. The result is saved with ``save_pretrained`` so that the
finetuning code path loads it like any Hub checkpoint.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast, get_linear_schedule_with_warmup

from .data import load_source
from .device import Precision, autocast, default_device, describe_device, resolve_precision
from .seeds import pretraining_seed
from .quiet import expected_new_weights
from .spec import Pretraining, Size, Spec, SpecError

DONE_MARKER = "instdecay_pretrained.json"


def train_tokenizer(texts: list[str], vocab_size: int, out: Path) -> None:
    """Train a lowercase WordPiece vocabulary (BERT conventions) with `tokenizers`; write ``out/vocab.txt``
    atomically (a concurrent writer of the same vocabulary is harmless: training is deterministic)."""
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, show_progress=False,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".vocab."))
    tok.save_model(str(staging))
    (staging / "vocab.txt").replace(out / "vocab.txt")
    shutil.rmtree(staging, ignore_errors=True)


def _mask(ids: torch.Tensor, special: torch.Tensor, cfg: Pretraining, mask_id: int, vocab: int,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT masking: choose mask_prob of the non-special tokens; 80% [MASK], 10% random, 10% unchanged."""
    probs = torch.full(ids.shape, cfg.mask_prob)
    probs[special] = 0.0
    chosen = torch.bernoulli(probs, generator=gen).bool()
    if not chosen.any():  # make sure the batch has at least one target
        flat = (~special).nonzero()
        chosen[tuple(flat[torch.randint(len(flat), (1,), generator=gen)][0])] = True
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    inputs[chosen & (r < 0.8)] = mask_id
    random_tokens = torch.randint(vocab, ids.shape, generator=gen)
    replace = chosen & (r >= 0.8) & (r < 0.9)
    inputs[replace] = random_tokens[replace]
    return inputs, chosen, ids[chosen]


def _truncated(init: str, layers: int) -> tuple[BertTokenizerFast, BertForMaskedLM]:
    """A pretrained BERT with only its first ``layers`` transformer layers, and an MLM head (the checkpoint's,
    or a new one when it has none, e.g. a sentence-embedding model)."""
    try:
        tokenizer = BertTokenizerFast.from_pretrained(init)
        with expected_new_weights():  # a new MLM head is expected here: no load report
            model = BertForMaskedLM.from_pretrained(init)
    except (OSError, ValueError) as exc:
        raise SpecError(f"pretrain.init {init!r}: cannot load a BERT from it ({str(exc).splitlines()[0][:120]})") from None
    available = model.config.num_hidden_layers
    if layers > available:
        raise SpecError(f"pretrain.init {init!r} has {available} layers; cannot keep {layers}")
    model.bert.encoder.layer = model.bert.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    return tokenizer, model


def pretrain(spec: Spec, size_name: str, seed: int, *, device: str | None = None, progress: bool = True,
             precision: Precision = "auto") -> Path:
    """Pretrain the model of ``size_name`` / pretraining ``seed`` on ``device`` (default: cuda when available);
    return its folder (skips if already done).

    Batches and masks are drawn on the CPU from a generator seeded by (size, seed) (the same masks on every device)
    and moved to the device once per step; the forward pass runs under bf16 autocast where the hardware computes
    bf16 natively (``precision="auto"``).
    """
    start_time = time.perf_counter()
    size: Size = spec.size(size_name)
    matches = [p for p in size.pretrained if p.seed == seed and p.pretrain is not None]
    if not matches:
        raise SpecError(f"{spec.path}: size {size_name!r} has no 'pretrain' entry with seed {seed}")
    cfg = matches[0].pretrain
    out = Path(spec.pretrained_path(size, matches[0]))
    if (out / DONE_MARKER).exists():
        return out
    dev = torch.device(device) if device else default_device()
    mode = resolve_precision(dev, precision)
    run_seed = pretraining_seed(size_name, seed)
    corpus = load_source(cfg.corpus, spec.task)
    if cfg.text_field != spec.task.text_fields[0]:
        raise SpecError(f"{spec.path}: pretrain.text_field must be the task's first text field")
    texts = corpus.text_a
    torch.manual_seed(run_seed)  # the initialisation (from scratch, or of the new MLM head) depends on it only
    if cfg.init is not None:
        tokenizer, model = _truncated(cfg.init, cfg.layers)
    else:
        if not (Path(cfg.tokenizer) / "vocab.txt").exists():
            train_tokenizer(texts, cfg.vocab_size, Path(cfg.tokenizer))
        tokenizer = BertTokenizerFast.from_pretrained(cfg.tokenizer, do_lower_case=True)
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                            num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate,
                            max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
        model = BertForMaskedLM(config)
    model = model.to(dev)
    enc = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    gen = torch.Generator().manual_seed(run_seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup * cfg.steps), cfg.steps)
    special_ids = torch.tensor(tokenizer.all_special_ids)
    model.train()
    order = torch.randperm(len(enc), generator=gen)
    cursor = 0
    recent: list[float] = []  # losses of the last 100 steps (the final loss of one batch is noisy)
    bar = tqdm(range(cfg.steps), desc=f"pretrain {size_name} seed {seed}", disable=not progress)
    for _ in bar:
        if cursor + cfg.batch_size > len(order):
            order, cursor = torch.randperm(len(enc), generator=gen), 0
        rows = order[cursor : cursor + cfg.batch_size].tolist()
        cursor += cfg.batch_size
        batch = tokenizer.pad([{"input_ids": enc[r]} for r in rows], return_tensors="pt")
        ids, attention = batch["input_ids"], batch["attention_mask"]
        inputs, chosen, targets = _mask(ids, torch.isin(ids, special_ids), cfg, tokenizer.mask_token_id,
                                        len(tokenizer), gen)
        inputs, attention, chosen, targets = (t.to(dev, non_blocking=True) for t in (inputs, attention, chosen, targets))
        with autocast(dev, mode):
            hidden = model.bert(input_ids=inputs, attention_mask=attention).last_hidden_state
            logits = model.cls(hidden[chosen])  # vocabulary projection at the masked positions only
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        recent = (recent + [loss.item()])[-100:]
        bar.set_postfix(loss=f"{recent[-1]:.3f}")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.to("cpu").save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        n_non_embedding = sum(p.numel() for n, p in model.bert.named_parameters() if "embeddings" not in n)
        marker = {"size": size_name, "seed": seed, "init": cfg.init, "layers": cfg.layers, "steps": cfg.steps,
                  "final_mlm_loss": round(recent[-1], 4),
                  "mlm_loss_last_100_steps": round(sum(recent) / len(recent), 4),
                  "non_embedding_params": n_non_embedding, "device": describe_device(dev),
                  "precision": mode, "seed_of_randomness": run_seed,
                  "wall_time_s": round(time.perf_counter() - start_time, 1)}
        (staging / DONE_MARKER).write_text(json.dumps(marker) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
