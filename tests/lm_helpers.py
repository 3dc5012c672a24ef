"""A tiny causal LM with a byte-level tokenizer, built in the tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from frugal.tasks.lm import CausalLM
from frugal.tasks.lm_zoo import byte_tokenizer

TEXT = " ".join(
    f"the {a} {b} sat on the {c} and saw {n} birds."
    for n in range(40)
    for a, b, c in [("small", "cat", "mat"), ("big", "dog", "log"), ("red", "fox", "box")]
)


def tiny_llama(seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(cfg).eval()


def tiny_lm(seed: int = 0) -> CausalLM:
    return CausalLM(tiny_llama(seed), byte_tokenizer(), "tiny-llama")


def save_tiny_lm(folder: Path, seed: int = 0) -> Path:
    lm = tiny_lm(seed)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def text_tokens() -> torch.Tensor:
    return torch.tensor(list(TEXT.encode()), dtype=torch.long)  # byte-level ids


def trained_llama(steps: int = 150, seed: int = 0) -> LlamaForCausalLM:
    """The tiny Llama after a short full-precision training on TEXT (so that quantization
    has something to lose)."""
    from frugal.quantize import batch_nll
    from frugal.tasks.lm import calibration_windows

    model = tiny_llama(seed)
    batches = calibration_windows(text_tokens()[:3000], 64, 64, seed=seed, batch_size=8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        b = batches[step % len(batches)]
        loss = batch_nll(model, b) / b.tokens
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
