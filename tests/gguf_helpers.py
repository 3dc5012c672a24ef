"""Small GGUF language models built in the tests: a random Llama / Qwen2 / Gemma 3 with a
byte-level BPE vocabulary (256 bytes, a few merges, <s> and </s>)."""

from __future__ import annotations

from pathlib import Path

import torch

MERGES = ["t h", "th e", "Ġ t", "Ġt h", "Ġth e", "a t", "Ġ c", "Ġc at"]


def tokenizer_metadata() -> dict:
    """`tokenizer.ggml.*` keys of a GPT-2-style byte-level BPE."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_chars = bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)]
    tokens += [m.replace(" ", "") for m in MERGES] + ["<s>", "</s>"]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [1] * (len(tokens) - 2) + [3, 3],
        "tokenizer.ggml.merges": MERGES,
        "tokenizer.ggml.bos_token_id": len(tokens) - 2,
        "tokenizer.ggml.eos_token_id": len(tokens) - 1,
    }


VOCAB = 256 + len(MERGES) + 2


def tiny_causal_lm(kind: str = "llama", seed: int = 0, tied: bool = True):
    """A random 2-layer transformers causal LM of the family `kind` (llama, qwen2, gemma3)."""
    import transformers as hf

    torch.manual_seed(seed)
    common = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        tie_word_embeddings=tied,
    )  # fmt: skip
    if kind == "llama":
        model = hf.LlamaForCausalLM(hf.LlamaConfig(**common))
    elif kind == "qwen2":
        model = hf.Qwen2ForCausalLM(hf.Qwen2Config(**common))
    elif kind == "gemma3":
        cfg = hf.Gemma3TextConfig(**common, head_dim=16, sliding_window=64)
        model = hf.Gemma3ForCausalLM(cfg)
    else:
        raise ValueError(kind)
    with torch.no_grad():  # norms away from their initial 1 (or 0), so a wrong offset shows
        for _name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def write_tiny_gguf(path: Path, kind: str = "llama", types=None, seed: int = 0, tied=True):
    """(model, path): the random model written to `path` as GGUF with its tokenizer."""
    from frugal.models.gguf_writer import write_gguf

    model = tiny_causal_lm(kind, seed, tied)
    write_gguf(model, path, types=types, metadata=tokenizer_metadata(), name=f"tiny-{kind}")
    return model, path
