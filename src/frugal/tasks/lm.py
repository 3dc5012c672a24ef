"""Causal language modelling as a quantization task: any transformers causal LM from a local
folder, text files as token streams, random calibration windows, and sliding-window NLL and
perplexity (each token scored once, with up to `context` tokens before it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from frugal.quantize.batches import IGNORE, Batch, mean_nll


@dataclass
class CausalLM:
    """A causal LM with its tokenizer."""

    model: nn.Module
    tokenizer: object
    name: str

    @property
    def max_positions(self) -> int:
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            if getattr(cfg, key, None):
                return int(getattr(cfg, key))
        return 2048

    def save(self, folder: str | Path, record: dict | None = None) -> Path:
        """A transformers folder (+ the quantization record when given)."""
        from frugal.quantize import write_quant_record

        folder = Path(folder)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        return write_quant_record(folder, record)


def block_pattern(model: nn.Module) -> str:
    """Glob of the Linears inside the model's layer stacks (the usual PTQ scope)."""
    from frugal.quantize import find_stacks

    stacks = find_stacks(model)
    if not stacks:
        raise ValueError("found no stack of transformer blocks in the model")
    return stacks[0] + ".*" if len(stacks) == 1 else "*"


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32) -> CausalLM:
    """A transformers causal LM and tokenizer from a local folder (or hub id when online)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    local = p.is_dir()
    if not local and (p.exists() or str(path).startswith((".", "/"))):
        raise FileNotFoundError(f"{path}: no such model folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=local, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=local)
    except OSError as exc:
        raise OSError(f"could not load a causal LM from {path}: {exc}".splitlines()[0]) from exc
    model.eval()
    return CausalLM(model, tok, p.name if local else str(path))


def read_tokens(lm: CausalLM, files: Sequence[str | Path]) -> torch.Tensor:
    """Token ids of the text files, concatenated (one long stream)."""
    if not files:
        raise ValueError("no text files given")
    texts = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such text file")
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            raise ValueError(f"{path}: empty text file")
        texts.append(text)
    ids = lm.tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def calibration_windows(
    tokens: torch.Tensor, n: int, length: int, seed: int = 0, batch_size: int = 4
) -> list[Batch]:
    """`n` windows of `length` tokens at seeded random offsets (GPTQ's usual calibration),
    every next token scored."""
    if len(tokens) < length + 1:
        raise ValueError(f"{len(tokens)} tokens are fewer than one window of {length + 1}")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(tokens) - length, (n,), generator=gen).tolist()
    rows = torch.stack([tokens[s : s + length + 1] for s in starts])
    return [
        Batch({"input_ids": rows[i : i + batch_size, :-1]}, rows[i : i + batch_size, 1:].clone())
        for i in range(0, n, batch_size)
    ]


def sliding_windows(tokens: torch.Tensor, context: int, stride: int) -> list[Batch]:
    """Windows of up to `context` input tokens, advancing by `stride`; each scores only the
    tokens no earlier window scored, so every token (but the first) is scored exactly once,
    with at least `context - stride` tokens of context (the first window: fewer)."""
    if not 0 < stride <= context:
        raise ValueError("need 0 < stride <= context")
    if len(tokens) < 2:
        raise ValueError("need at least two tokens")
    batches = []
    scored = 1  # the first token has no prediction
    end = min(context + 1, len(tokens))
    while True:
        start = max(0, end - context - 1)  # the model sees at most `context` input tokens
        window = tokens[start:end]
        target = window[1:].clone()
        target[: scored - start - 1] = IGNORE  # tokens an earlier window scored
        batches.append(Batch({"input_ids": window[None, :-1]}, target[None]))
        scored = end
        if end == len(tokens):
            break
        end = min(end + stride, len(tokens))
    return batches


def perplexity(model: nn.Module, batches: Sequence[Batch]) -> tuple[float, float]:
    """(NLL per token in nats, perplexity)."""
    nll = mean_nll(model, batches)
    return nll, math.exp(nll)


__all__ = [
    "CausalLM",
    "calibration_windows",
    "load_causal_lm",
    "perplexity",
    "read_tokens",
    "sliding_windows",
]
