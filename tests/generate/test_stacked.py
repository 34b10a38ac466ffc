"""Stacked runs: the batched forward pass is BERT's, and a run trained in a stack gives the predictions it gives
trained alone (deterministic settings, fp32)."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from instdecay.generate.finetune import padded, run_finetune_group
from instdecay.generate.seeds import run_seeds
from instdecay.generate.spec import load_spec
from instdecay.generate.stacked import DropoutMasks, StackedBert, supports, unstack


def _models(tiny_world, seeds=(0, 1)):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tiny_world / "models" / "s-seed0"
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(AutoModelForSequenceClassification.from_pretrained(path, num_labels=2))
    return AutoTokenizer.from_pretrained(path), out


def _inputs(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["token_type_ids"], enc["attention_mask"]


def test_forward_equals_transformers_bert(tiny_world):
    tokenizer, models = _models(tiny_world)
    assert all(supports(m.config) for m in models)
    stacked = StackedBert(models)
    ids, types, mask = _inputs(tokenizer, ["good movie", "very bad plot not fun at all", "dull"])
    with torch.no_grad():
        got = stacked(ids, types, mask)
        for k, m in enumerate(models):
            m.eval()
            want = m(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
            torch.testing.assert_close(got[k], want, atol=1e-5, rtol=1e-5)
            assert {n: v.shape for n, v in unstack(stacked, k).items()} == {n: v.shape for n, v in m.named_parameters()}


def test_gradients_equal_transformers_bert_without_dropout(tiny_world):
    tokenizer, models = _models(tiny_world)
    stacked = StackedBert(models)
    ids, types, mask = _inputs(tokenizer, ["good movie", "very bad plot not fun at all"])
    labels = torch.tensor([1, 0])
    logits = stacked(ids, types, mask)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.repeat(2), reduction="none").view(2, 2).mean(1).sum().backward()
    stacked.finish_backward()  # no clipping: the word embeddings' looked-up rows go into their gradient
    for k, m in enumerate(models):
        m.eval()  # no dropout on either side
        m(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels).loss.backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(stacked.weights[stacked.index[name]].grad[k], p.grad, atol=1e-5, rtol=1e-4)


def test_each_runs_dropout_masks_do_not_depend_on_the_stack(tiny_world):
    _, models = _models(tiny_world, seeds=(0, 1, 2))
    stacked, alone = StackedBert(models), StackedBert(models[1:2])
    lengths = torch.tensor([[4, 2], [7, 5], [3, 3]])  # tokens of each run's 2 sequences
    attention = (torch.arange(7) < lengths[..., None]).long()
    together = DropoutMasks(stacked, [torch.Generator().manual_seed(s) for s in (5, 6, 7)], attention)
    single = DropoutMasks(alone, [torch.Generator().manual_seed(6)], attention[1:2])
    for name, mask in single.masks.items():
        assert torch.equal(together.masks[name][1], mask[0]), name
    assert together.masks["output0"].shape == (3, 12, 16)  # the most real tokens of any run (7 + 5)
    frac = together.masks["output0"][0, :6].float().mean().item()
    assert 0.7 < frac < 1.0  # dropout 0.1: about 90% kept on the run's own 6 tokens


def test_a_stacked_run_equals_the_same_run_trained_alone(make_spec, tmp_path):
    spec_a = load_spec(make_spec("a.yaml", output=str(tmp_path / "a")))
    spec_b = load_spec(make_spec("b.yaml", output=str(tmp_path / "b")))
    together = run_finetune_group(spec_a, "s", [(0, 0), (1, 1), (1, 0)], progress=False, precision="fp32")
    alone = run_finetune_group(spec_b, "s", [(1, 1)], progress=False, precision="fp32")[0]
    a, b = pq.read_table(together[1]), pq.read_table(alone)
    np.testing.assert_allclose(np.array(a.column("probs").to_pylist()), np.array(b.column("probs").to_pylist()),
                               atol=1e-4)
    assert a.column("pred").to_pylist() == b.column("pred").to_pylist()
    others = [np.array(pq.read_table(p).column("probs").to_pylist()) for p in (together[0], together[2])]
    assert all(np.abs(o - np.array(a.column("probs").to_pylist())).max() > 1e-3 for o in others)


def test_stacked_and_transformers_loops_agree_on_a_run_without_dropout_noise(make_spec, tmp_path):
    """The same run through both training loops: not bit-identical (different dropout draws), but both learn the
    tiny task to the same accuracy."""
    spec = load_spec(make_spec("a.yaml", output=str(tmp_path / "a")))
    stacked = pq.read_table(run_finetune_group(spec, "s", [(0, 0)], progress=False, precision="fp32")[0])
    spec = load_spec(make_spec("b.yaml", output=str(tmp_path / "b")))
    plain = pq.read_table(run_finetune_group(spec, "s", [(0, 0)], progress=False, precision="fp32", stack=False)[0])
    acc = [t.filter(t.column("checkpoint").to_numpy() == 2).column("correct").to_numpy().mean() for t in (stacked, plain)]
    assert abs(acc[0] - acc[1]) <= 0.15, acc


def test_nested_seeds_differ_by_size_pretraining_and_finetuning_seed_crossed_share_them():
    nested = {(s, p, f): run_seeds("nested", s, p, f) for s in ("a", "b") for p in (0, 1) for f in (0, 1)}
    assert len({tuple(v.values()) for v in nested.values()}) == len(nested)
    assert len({v for seeds in nested.values() for v in seeds.values()}) == 3 * len(nested)  # streams differ too
    assert run_seeds("crossed", "a", 0, 1) == run_seeds("crossed", "b", 5, 1) != run_seeds("crossed", "a", 0, 0)


def test_run_metadata_records_design_seeds_precision_and_stack(make_spec, tmp_path):
    import json

    spec = load_spec(make_spec(output=str(tmp_path / "o")))
    path = run_finetune_group(spec, "xs", [(0, 0), (0, 1)], progress=False, precision="fp32")[1]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["seed_design"] == "nested" and meta["precision"] == "fp32" and meta["runs_in_process"] == 2
    assert meta["stream_seeds"] == run_seeds("nested", "xs", 0, 1)


def test_padding_keeps_every_token():
    ids, types, lengths = padded([[1, 2, 3], [4], [5, 6]], [[0, 0, 1], [0], [1, 1]], pad=9)
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9], [5, 6, 9]] and lengths.tolist() == [3, 1, 2]
    assert types.tolist() == [[0, 0, 1], [0, 0, 0], [1, 1, 0]]


@pytest.mark.parametrize("flags, expected", [({"avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16"), ({"avx2"}, "fp32")])
def test_auto_precision_follows_the_cpu_flags(monkeypatch, flags, expected):
    from instdecay.generate import device

    monkeypatch.setattr(device, "cpu_flags", lambda: flags)
    assert device.resolve_precision(torch.device("cpu"), "auto") == expected
    assert device.resolve_precision(torch.device("cpu"), "fp32") == "fp32"
