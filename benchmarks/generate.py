"""Benchmark inference throughput: length-sorted batches with dynamic padding vs padding every batch to the
maximum length, for a small random BERT (L2/H128) on CPU, on SST-2 sentence lengths.

Uses the SST-2 validation + training sentences from ../shared/data when present, otherwise synthetic
sentences with SST-2-like lengths (mean ~9 words, long tail).

    python benchmarks/generate.py [--n 4000] [--batch-size 128] [--max-length 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertModel, BertTokenizer

from instdecay.generate.finetune import predict_probs

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "sst2" / "train.tsv"


def sentences(n: int) -> tuple[list[str], str]:
    if SST2.exists():
        df = pd.read_csv(SST2, sep="\t", quoting=3, keep_default_na=False)
        return df["sentence"].sample(n, random_state=0).tolist(), f"SST-2 training sentences ({SST2})"
    rng = np.random.default_rng(0)
    words = [f"w{k}" for k in range(500)]
    lengths = np.clip(rng.lognormal(1.9, 0.8, n).astype(int), 1, 60)
    return [" ".join(rng.choice(words, m)) for m in lengths], "synthetic sentences with SST-2-like lengths"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    texts, source = sentences(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        vocab = sorted({w for t in texts for w in t.lower().split()})[:20000]
        (Path(tmp) / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab]) + "\n")
        tok = BertTokenizer(vocab_file=str(Path(tmp) / "vocab.txt"))
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=len(tok), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=512)).save_pretrained(tmp)
        model = AutoModelForSequenceClassification.from_pretrained(tmp, num_labels=2)
    enc = tok(texts, truncation=True, max_length=args.max_length)
    ids, types = enc["input_ids"], enc["token_type_ids"]
    device = torch.device("cpu")
    lengths = np.array([len(x) for x in ids])
    print(f"{len(texts)} {source}; tokens per input: mean {lengths.mean():.1f}, max {lengths.max()}; "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads")

    def padded_to_max() -> np.ndarray:
        model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(ids), args.batch_size):
                batch = tok.pad([{"input_ids": i, "token_type_ids": t} for i, t in
                                 zip(ids[start : start + args.batch_size], types[start : start + args.batch_size])],
                                padding="max_length", max_length=args.max_length, return_tensors="pt")
                out.append(torch.softmax(model(**batch).logits, -1).numpy())
        return np.concatenate(out)

    def dynamic() -> np.ndarray:
        return predict_probs(model, tok, ids, types, args.batch_size, device)

    results = {}
    for name, fn in (("padded to max length", padded_to_max), ("length-sorted, dynamic padding", dynamic)):
        fn()  # warm-up
        start = time.perf_counter()
        probs = fn()
        results[name] = (len(ids) / (time.perf_counter() - start), probs)
        print(f"{name:<32} {results[name][0]:8.0f} examples/s")
    (base, p0), (fast, p1) = results.values()
    print(f"speed-up: {fast / base:.2f}x; max |prob difference| {np.abs(p0 - p1).max():.2e}")


if __name__ == "__main__":
    main()
