"""Several finetuning runs of one BERT-architecture size in one loop, with their weights stacked.

Every weight of the K runs is one tensor with a leading run axis, and every layer is one batched matmul
(``torch.baddbmm``) over that axis, so the runs share each step's kernels and Python overhead (what a GPU needs to
be busy, and what spares a CPU the per-process start-up, data loading and tokenisation of every run). Each run keeps
what makes it an independent run: its own initial weights (its pretrained model and classifier head), its own data
order, its own dropout masks (drawn from its own generator at its own batch shape, then padded to the common
length), its own gradient clipping and its own optimizer state (AdamW is elementwise, so one fused optimizer over the
stacked tensors updates each run exactly as alone). A run trained in a stack therefore gives the predictions it gives
trained alone (K = 1), to floating-point tolerance.

The forward pass is that of ``transformers``' ``BertForSequenceClassification`` (absolute positions, exact GELU,
post-LayerNorm, pooler + classifier on [CLS]); :func:`supports` says whether a config can be stacked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_NO_DECAY = ("bias", "LayerNorm.weight")
_WORD = "bert.embeddings.word_embeddings.weight"
# What the computation depends on; runs that agree on these can be stacked.
_ARCHITECTURE = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "hidden_dropout_prob",
                 "attention_probs_dropout_prob", "classifier_dropout", "num_labels", "hidden_act")


def supports(config) -> bool:
    """Whether a ``transformers`` config is a BERT classifier this module computes exactly."""
    return (getattr(config, "model_type", None) == "bert" and config.hidden_act == "gelu"
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and not getattr(config, "is_decoder", False))


def stackable(configs: list) -> bool:
    """Whether models with these configs can be trained in one stack (BERTs of one architecture)."""
    shapes = [[getattr(c, a, None) for a in _ARCHITECTURE] for c in configs]
    return all(supports(c) for c in configs) and all(s == shapes[0] for s in shapes)


class StackedBert(torch.nn.Module):
    """K ``BertForSequenceClassification`` models with stacked weights (parameter ``name`` has shape (K, ...))."""

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        config = models[0].config
        if not stackable([m.config for m in models]):
            raise ValueError("stacked runs need BERT classifiers of one architecture")
        self.config = config
        self.names = [n for n, _ in models[0].named_parameters()]
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in models]))
             for n in self.names])
        self.index = {n: k for k, n in enumerate(self.names)}
        self._word_rows: tuple[torch.Tensor, torch.Tensor] | None = None
        self.hidden_p = config.hidden_dropout_prob
        self.attention_p = config.attention_probs_dropout_prob
        self.classifier_p = config.classifier_dropout if config.classifier_dropout is not None else self.hidden_p

    @property
    def n_runs(self) -> int:
        return self.weights[0].shape[0]

    def w(self, name: str) -> torch.Tensor:
        return self.weights[self.index[name]]

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups as the single-run loop has them: no decay for biases and LayerNorm weights."""
        decay = [p for n, p in zip(self.names, self.weights) if not any(k in n for k in _NO_DECAY)]
        rest = [p for n, p in zip(self.names, self.weights) if any(k in n for k in _NO_DECAY)]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]

    def finish_backward(self, max_norm: float = float("inf")) -> torch.Tensor:
        """After ``backward()``: clip each run's gradient to total norm ``max_norm`` (as ``clip_grad_norm_`` on that
        run alone) and put the word embeddings' gradient in place; return each run's gradient norm.

        The word embeddings' gradient is nonzero only on the rows a step looked up, so it is kept in a persistent
        buffer: the looked-up rows are written after each backward and zeroed after each optimizer step
        (:meth:`zero_grad`), instead of writing the whole (K, vocabulary, hidden) table twice per step."""
        word = self.w(_WORD)
        runs = word.shape[0]
        per_weight = [torch.linalg.vector_norm(p.grad, dim=tuple(range(1, p.dim()))) for p in self.weights
                      if p.grad is not None and p is not word]
        if self._word_rows is not None:
            looked_up, rows = self._word_rows
            squares = torch.zeros(runs, device=word.device).index_add_(0, looked_up // word.shape[1],
                                                                       rows.grad.float().pow(2).sum(dim=1))
            per_weight.append(squares.sqrt())
        norms = torch.linalg.vector_norm(torch.stack(per_weight), dim=0)
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for p in self.weights:
            if p.grad is not None and p is not word:
                p.grad.mul_(scale.view(-1, *([1] * (p.grad.dim() - 1))).to(p.grad.dtype))
        if self._word_rows is not None:
            looked_up, rows = self._word_rows
            if word.grad is None:
                word.grad = torch.zeros_like(word)
            word.grad.view(-1, word.shape[2]).index_copy_(0, looked_up, rows.grad * scale[looked_up // word.shape[1], None])
        return norms

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients after an optimizer step (the word embeddings' buffer: only the rows written)."""
        word = self.w(_WORD)
        for p in self.weights:
            if p is not word:
                p.grad = None
        if self._word_rows is not None and word.grad is not None:
            word.grad.view(-1, word.shape[2]).index_fill_(0, self._word_rows[0], 0.0)
        self._word_rows = None

    def _linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """x (K, ..., in) @ weight (K, out, in)^T + bias (K, out), one batched matmul over the runs."""
        shape = x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        weight, bias = self.w(f"{prefix}.weight"), self.w(f"{prefix}.bias")
        out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
        return out.reshape(*shape[:-1], weight.shape[1])

    def _words(self, ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings of ``ids`` (K, ...). With gradients on, the looked-up rows become a leaf of their own
        (see :meth:`finish_backward`)."""
        if not (torch.is_grad_enabled() and self.w(_WORD).requires_grad):
            return self._embed(ids, _WORD)
        table = self.w(_WORD)
        looked_up, where = torch.unique(_offset(ids, table), return_inverse=True)
        rows = table.detach().reshape(-1, table.shape[2])[looked_up].requires_grad_(True)
        self._word_rows = (looked_up, rows)
        return F.embedding(where, rows)

    def _embed(self, ids: torch.Tensor, name: str) -> torch.Tensor:
        """Rows ``ids`` (K, ...) of each run's own table (K, V, H): one lookup in the runs' tables laid end to end."""
        table = self.w(name)
        return F.embedding(_offset(ids, table), table.reshape(-1, table.shape[2]))

    def _layer_norm(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        k = x.shape[0]
        view = (k,) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        normed = F.layer_norm(x, x.shape[-1:], eps=self.config.layer_norm_eps)
        return normed * self.w(f"{prefix}.weight").view(view) + self.w(f"{prefix}.bias").view(view)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor,
                dropout: DropoutMasks | None = None) -> torch.Tensor:
        """Logits (K, B, C). Inputs are (K, B, T), one batch per run, or (B, T), one batch shared by all runs;
        ``dropout`` holds each run's masks (training), None for evaluation.

        Token-wise layers (embeddings, projections, feed-forward, LayerNorm) run on each run's real tokens only,
        laid out as (K, M, H) with M the most real tokens of any run (padding is most of a batch of short
        sentences); attention scatters them into the padded (K, B, T) layout and back."""
        k = self.n_runs
        if input_ids.dim() == 2:
            input_ids, token_type_ids, attention_mask = (t.unsqueeze(0).expand(k, -1, -1)
                                                         for t in (input_ids, token_type_ids, attention_mask))
        tokens = Layout.of(attention_mask)
        positions = tokens.gather_ids(torch.arange(tokens.length, device=input_ids.device).expand_as(input_ids))
        x = (self._words(tokens.gather_ids(input_ids))
             + self._embed(tokens.gather_ids(token_type_ids), "bert.embeddings.token_type_embeddings.weight")
             + self._embed(positions, "bert.embeddings.position_embeddings.weight"))
        x = _drop(self._layer_norm(x, "bert.embeddings.LayerNorm"), dropout, "embeddings")
        heads = self.config.num_attention_heads
        size = x.shape[-1] // heads
        blocked = torch.zeros(attention_mask.shape, dtype=x.dtype, device=x.device)
        blocked = blocked.masked_fill(attention_mask == 0, torch.finfo(x.dtype).min)[:, :, None, None, :]
        for layer in range(self.config.num_hidden_layers):
            prefix = f"bert.encoder.layer.{layer}"

            def split(t: torch.Tensor) -> torch.Tensor:  # (K, M, H) tokens -> (K, B, heads, T, size) padded
                padded = tokens.to_padded(t)
                return padded.view(*padded.shape[:3], heads, size).transpose(2, 3)

            q, key, v = (split(self._linear(x, f"{prefix}.attention.self.{n}")) for n in ("query", "key", "value"))
            scores = torch.matmul(q, key.transpose(-1, -2)) / math.sqrt(size) + blocked.to(q.dtype)
            probs = _drop(torch.softmax(scores.float(), dim=-1).to(v.dtype), dropout, f"attention{layer}")
            context = tokens.from_padded(torch.matmul(probs, v).transpose(2, 3).flatten(3))
            attended = _drop(self._linear(context, f"{prefix}.attention.output.dense"), dropout, f"attended{layer}")
            x = self._layer_norm(attended + x, f"{prefix}.attention.output.LayerNorm")
            inner = F.gelu(self._linear(x, f"{prefix}.intermediate.dense"))
            out = _drop(self._linear(inner, f"{prefix}.output.dense"), dropout, f"output{layer}")
            x = self._layer_norm(out + x, f"{prefix}.output.LayerNorm")
        first = x.gather(1, tokens.first[..., None].expand(-1, -1, x.shape[-1]))  # [CLS] of each sequence
        pooled = torch.tanh(self._linear(first, "bert.pooler.dense"))
        return self._linear(_drop(pooled, dropout, "classifier"), "classifier")

    def site_shapes(self, batch: int, length: int, tokens: int) -> list[tuple[str, tuple[int, ...], float]]:
        """Every dropout site of one run's step, in the order its masks are drawn: (name, shape, probability), for
        ``tokens`` real tokens in a batch of ``batch`` sequences of at most ``length`` tokens."""
        hidden, heads = self.config.hidden_size, self.config.num_attention_heads
        sites = [("embeddings", (tokens, hidden), self.hidden_p)]
        for layer in range(self.config.num_hidden_layers):
            sites += [(f"attention{layer}", (batch, heads, length, length), self.attention_p),
                      (f"attended{layer}", (tokens, hidden), self.hidden_p),
                      (f"output{layer}", (tokens, hidden), self.hidden_p)]
        return sites + [("classifier", (batch, hidden), self.classifier_p)]


class Layout:
    """Where each run's real tokens sit: token row m of run k is flat position ``where[k, m]`` (= b * T + t) of the
    padded (B, T) batch; rows past a run's own token count point at a spare slot B * T."""

    def __init__(self, where: torch.Tensor, first: torch.Tensor, batch: int, length: int):
        self.where, self.first, self.batch, self.length = where, first, batch, length

    @classmethod
    def of(cls, attention_mask: torch.Tensor) -> Layout:
        k, batch, length = attention_mask.shape
        flat = attention_mask.reshape(k, -1).bool()
        counts = flat.sum(dim=1)
        order = torch.argsort((~flat).to(torch.int8), dim=1, stable=True)[:, : int(counts.max())]
        valid = torch.arange(order.shape[1], device=order.device) < counts[:, None]
        lengths = attention_mask.sum(dim=2)
        return cls(torch.where(valid, order, batch * length), torch.cumsum(lengths, dim=1) - lengths, batch, length)

    def gather_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """(K, B, T) integer ids -> (K, M) at the token rows (0 in spare rows)."""
        flat = F.pad(ids.reshape(ids.shape[0], -1), (0, 1))
        return flat.gather(1, self.where)

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(K, M, D) token rows -> (K, B, T, D), zero at padding."""
        k, _, d = x.shape
        out = x.new_zeros(k, self.batch * self.length + 1, d).scatter(1, self.where[..., None].expand(-1, -1, d), x)
        return out[:, :-1].view(k, self.batch, self.length, d)

    def from_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B, T, D) -> (K, M, D) token rows (zero in spare rows)."""
        flat = F.pad(x.reshape(x.shape[0], -1, x.shape[-1]), (0, 0, 0, 1))
        return flat.gather(1, self.where[..., None].expand(-1, -1, x.shape[-1]))


class DropoutMasks:
    """Each run's dropout masks for one step, drawn from the run's own generator at the run's own shapes (its real
    tokens, its batch's own length), so that they do not depend on the other runs of the stack, then padded to the
    stack's shapes."""

    def __init__(self, model: StackedBert, generators: list[torch.Generator], attention_mask: torch.Tensor):
        k, batch, length = attention_mask.shape
        counts = attention_mask.reshape(k, -1).sum(dim=1).tolist()
        lengths = attention_mask.sum(dim=2).max(dim=1).values.tolist()
        full = model.site_shapes(batch, length, int(max(counts)))
        self.scale = {name: 1.0 / (1.0 - p) if p < 1 else 0.0 for name, _, p in full}
        per_run = []
        for generator, own_length, own_tokens in zip(generators, lengths, counts):
            drawn = {}
            for (name, shape, p), (_, padded, _) in zip(model.site_shapes(batch, int(own_length), int(own_tokens)), full):
                keep = torch.rand(shape, generator=generator, device=generator.device) >= p
                drawn[name] = F.pad(keep, _padding(shape, padded), value=True)
            per_run.append(drawn)
        self.masks = {name: torch.stack([d[name] for d in per_run]).to(attention_mask.device) for name, _, _ in full}

    def apply(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return x * self.masks[name].to(x.dtype) * self.scale[name]


def _offset(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Row ``ids[k, ...]`` of run k's table as a row of the runs' tables (K, V, H) laid end to end."""
    runs = torch.arange(table.shape[0], device=ids.device).view(-1, *([1] * (ids.dim() - 1)))
    return ids + runs * table.shape[1]


def _padding(shape: tuple[int, ...], full: tuple[int, ...]) -> list[int]:
    """F.pad widths (last axis first) that grow ``shape`` to ``full`` at the end of each axis."""
    out: list[int] = []
    for own, target in zip(reversed(shape), reversed(full)):
        out += [0, target - own]
    return out


def _drop(x: torch.Tensor, masks: DropoutMasks | None, name: str) -> torch.Tensor:
    return x if masks is None else masks.apply(x, name)


def unstack(model: StackedBert, k: int) -> dict[str, torch.Tensor]:
    """Run ``k``'s weights under ``transformers``' parameter names (for checks and for saving a run)."""
    return {n: p[k].detach().clone() for n, p in zip(model.names, model.weights)}
