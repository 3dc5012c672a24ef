"""The zoo of small LMs: both families build, GPT-2's Conv1D→Linear swap is exact, training
is deterministic and a saved model reloads to the same outputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from frugal.tasks.lm_zoo import (
    ZOO,
    ZooSpec,
    _gpt2_linear,
    build_model,
    corpus_split,
    corpus_text,
    load_zoo_model,
    train_zoo_model,
)
from tests.tolerance import assert_fp32_pair_close


def test_corpus_is_english_text_and_split_holds_out_the_tail():
    text = corpus_text()
    assert len(text) > 300_000 and "the" in text
    tokens = torch.arange(1000)
    train, held = corpus_split(tokens)
    assert len(train) == 900 and torch.equal(held, tokens[900:])


def test_gpt2_linear_swap_is_exact():
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    ref = GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 64, (2, 10))
    want = ref(ids).logits
    got = _gpt2_linear(ref)(ids).logits
    assert_fp32_pair_close(got, want, "Linear vs Conv1D")  # the same products, other order
    assert not any(type(m).__name__ == "Conv1D" for m in ref.modules())


def test_unknown_family_and_model_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown zoo family"):
        build_model(ZooSpec("x", "mamba", 32, 1, 2))
    with pytest.raises(ValueError, match="unknown zoo model"):
        load_zoo_model("llama-9000", tmp_path)


@pytest.mark.parametrize("name", ["llama-64x2", "gpt2-64x2"])
def test_training_is_deterministic_and_reloads(name, tmp_path):
    spec = dataclasses.replace(ZOO[name], steps=6, batch_size=2, context=32)
    a = train_zoo_model(spec, tmp_path / name)
    b = train_zoo_model(spec, tmp_path / "again")
    ids = torch.randint(0, 256, (1, 16))
    reloaded = load_zoo_model(name, tmp_path)  # found on disk: not trained again
    with torch.no_grad():
        want = a.model(ids).logits
        assert torch.equal(want, b.model(ids).logits)
        assert torch.allclose(want, reloaded.model(ids).logits, atol=1e-6)
    assert (tmp_path / name / "frugal_zoo.json").is_file()
