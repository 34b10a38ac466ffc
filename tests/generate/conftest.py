"""Tiny random BERTs saved with save_pretrained and a tiny classification dataset, all written by the tests."""

import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

WORDS = "good great fine fun bad awful dull poor movie plot acting film very not".split()


def _write_data(folder, rng):
    def rows(n):
        out = []
        for _ in range(n):
            label = int(rng.integers(0, 2))
            words = rng.choice(WORDS[:4] if label else WORDS[4:8], size=3).tolist() + rng.choice(WORDS[8:], size=2).tolist()
            out.append(f"{' '.join(rng.permutation(words))}\t{label}")
        return "sentence\tlabel\n" + "\n".join(out) + "\n"

    (folder / "train.tsv").write_text(rows(48))
    (folder / "dev.tsv").write_text(rows(20))


def _write_model(path, layers, hidden, seed):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = path.parent / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    BertTokenizer(vocab=str(vocab)).save_pretrained(path)  # transformers 5: `vocab=`, not `vocab_file=`


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_world")
    _write_data(root, np.random.default_rng(0))
    for size, layers, hidden in (("xs", 1, 8), ("s", 2, 16)):
        for seed in (0, 1):
            _write_model(root / "models" / f"{size}-seed{seed}", layers, hidden, seed=10 * layers + seed)
    return root


@pytest.fixture
def make_spec(tiny_world, tmp_path):
    """Write a spec for the tiny world into tmp_path and return its path."""
    def make(name="spec.yaml", **kw):
        return write_spec(tmp_path / name, tiny_world, **kw)
    return make


def write_spec(path, world, *, sizes=("xs", "s"), pretrain_seeds=(0, 1), finetune_seeds=(0, 1), extra_size="",
               output="shards"):
    size_blocks = []
    for size in sizes:
        pretrained = "\n".join(f"      - {{seed: {p}, model: {world}/models/{size}-seed{p}}}" for p in pretrain_seeds)
        size_blocks.append(f"""  - name: {size}
    family: tiny-bert
    hyperparameters: {{lr: 0.01, batch_size: 8, epochs: 2, max_length: 16, checkpoints: [1, 2], eval_batch_size: 7}}
    pretrained:
{pretrained}""")
    path.write_text(textwrap.dedent(f"""\
        name: tiny
        output: {output}
        work_dir: work
        finetune_seeds: {list(finetune_seeds)}
        task:
          name: toy
          label_names: [neg, pos]
          text_fields: [sentence]
          label_field: label
          train: {{dataset: csv, data_files: {world}/train.tsv, kwargs: {{delimiter: "\\t"}}, original_split: train}}
          eval_sets:
            validation: {{dataset: csv, data_files: {world}/dev.tsv, kwargs: {{delimiter: "\\t"}}, original_split: dev}}
            heldout: {{dataset: csv, data_files: {world}/train.tsv, kwargs: {{delimiter: "\\t"}}, original_split: train, rows: "40:"}}
        sizes:
        """) + "\n".join(size_blocks) + "\n" + extra_size)
    return path
