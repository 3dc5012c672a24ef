"""Causal language modelling as a quantization task: any transformers causal LM from a local
folder or a package that ships one (`smollm2-135m`), text files as token streams, random
calibration windows, and sliding-window NLL and perplexity (each token scored once, with up
to `context` tokens before it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from frugal.nn.batches import IGNORE, Batch, mean_nll


@dataclass
class CausalLM:
    """A causal LM with its tokenizer. `conv1d` names the GPT-2 Conv1D projections that
    were swapped for nn.Linear on loading (saved back in Conv1D layout); `note` says when
    the reference weights are themselves quantized (a GGUF source)."""

    model: nn.Module
    tokenizer: object
    name: str
    conv1d: tuple[str, ...] = ()
    note: str = ""

    @property
    def max_positions(self) -> int:
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            if getattr(cfg, key, None):
                return int(getattr(cfg, key))
        return 2048

    @property
    def text_prefix(self) -> list[int]:
        """The ids the tokenizer puts before a text (Gemma: <bos>; most LMs here: none).
        Windows of a token stream start with them, as the model saw text in training."""
        try:
            with_special = self.tokenizer("a")["input_ids"]
            plain = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        except (TypeError, KeyError):
            return []
        k = len(with_special) - len(plain)
        return list(with_special[:k]) if k > 0 and with_special[k:] == plain else []

    def save(self, folder: str | Path, record: dict | None = None) -> Path:
        """A transformers folder (+ the quantization record when given)."""
        from frugal.nn import conv1d_state
        from frugal.nn.artifact import write_quant_record

        folder = Path(folder)
        state = conv1d_state(self.model.state_dict(), list(self.conv1d)) if self.conv1d else None
        self.model.save_pretrained(folder, state_dict=state)
        self.tokenizer.save_pretrained(folder)
        return write_quant_record(folder, record)


def block_pattern(model: nn.Module) -> str:
    """Glob of the Linears inside the model's layer stacks (the usual PTQ scope)."""
    from frugal.quantize import find_stacks

    stacks = find_stacks(model)
    if not stacks:
        raise ValueError("found no stack of transformer blocks in the model")
    return stacks[0] + ".*" if len(stacks) == 1 else "*"


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32, log=None) -> CausalLM:
    """A transformers causal LM and tokenizer from a packaged name (`frugal models`), a local
    folder, or a hub id when online. GPT-2's Conv1D projections become nn.Linear."""
    from frugal.models.optional import require

    hf = require("transformers", "causal LMs")
    AutoModelForCausalLM, AutoTokenizer = hf.AutoModelForCausalLM, hf.AutoTokenizer

    from frugal.models.packaged_lm import PACKAGED_LMS, packaged_lm_folder
    from frugal.nn import conv1d_to_linear

    name, note = None, ""
    if str(path) in PACKAGED_LMS:
        name, note = str(path), PACKAGED_LMS[str(path)].grid
        path = packaged_lm_folder(str(path), log)
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
    swapped = tuple(conv1d_to_linear(model))
    return CausalLM(model, tok, name or (p.name if local else str(path)), swapped, note)


def read_tokens(lm: CausalLM, files: Sequence[str | Path]) -> torch.Tensor:
    """Token ids of the texts (files, or named sources of frugal.data.text), concatenated."""
    from frugal.data.text import text_corpus

    if not files:
        raise ValueError("no text files given")
    text = "\n\n".join(text_corpus(str(f)) for f in files)
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def calibration_windows(
    tokens: torch.Tensor,
    n: int,
    length: int,
    seed: int = 0,
    batch_size: int = 4,
    prefix: Sequence[int] = (),
) -> list[Batch]:
    """`n` windows of `length` tokens at seeded random offsets (GPTQ's usual calibration),
    every next token scored; each window after `prefix` (`CausalLM.text_prefix`), which is
    then the context of its first token."""
    if len(tokens) < length + 1:
        raise ValueError(f"{len(tokens)} tokens are fewer than one window of {length + 1}")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(tokens) - length, (n,), generator=gen).tolist()
    rows = torch.stack([tokens[s : s + length + 1] for s in starts])
    inputs, target = rows[:, :-1], rows[:, 1:]
    if prefix:
        pre = torch.tensor(list(prefix), dtype=torch.long).expand(n, -1)
        inputs = torch.cat([pre, rows[:, :-1]], 1)
        target = torch.cat([torch.full((n, len(prefix) - 1), IGNORE), rows], 1)
    return [
        Batch({"input_ids": inputs[i : i + batch_size]}, target[i : i + batch_size].clone())
        for i in range(0, n, batch_size)
    ]


def sliding_windows(
    tokens: torch.Tensor, context: int, stride: int, prefix: Sequence[int] = ()
) -> list[Batch]:
    """Windows of up to `context` input tokens, advancing by `stride`; each scores only the
    tokens no earlier window scored, so every token (but the first) is scored exactly once,
    with at least `context - stride` tokens of context (the first window: fewer). With a
    `prefix` (`CausalLM.text_prefix`, e.g. Gemma's <bos>) every window starts with it, and the
    first token is scored too, after the prefix alone."""
    if not 0 < stride <= context:
        raise ValueError("need 0 < stride <= context")
    if len(tokens) < 2:
        raise ValueError("need at least two tokens")
    pre = torch.tensor(list(prefix), dtype=torch.long)
    batches = []
    scored = 0 if len(pre) else 1  # without a prefix the first token has no prediction
    end = min(context + 1, len(tokens))
    while True:
        start = max(0, end - context - 1)  # the model sees at most `context` input tokens
        window = tokens[start:end]
        if len(pre):
            inputs = torch.cat([pre, window[:-1]])
            target = torch.cat([torch.full((len(pre) - 1,), IGNORE), window])
            target[len(pre) - 1 : len(pre) - 1 + max(0, scored - start)] = IGNORE
        else:
            inputs, target = window[:-1], window[1:].clone()
            target[: scored - start - 1] = IGNORE  # tokens an earlier window scored
        batches.append(Batch({"input_ids": inputs[None]}, target[None]))
        scored = end
        if end == len(tokens):
            break
        end = min(end + stride, len(tokens))
    return batches


def stack_windows(batches: Sequence[Batch], size: int = 8) -> list[Batch]:
    """Consecutive one-row windows of equal length joined into batches of up to `size` rows:
    the same tokens scored with the same context, in fewer forward passes."""
    out: list[Batch] = []
    run: list[Batch] = []
    for b in [*batches, None]:
        same = b is not None and run and b.target.shape == run[0].target.shape
        if run and (not same or len(run) == size):
            ids = torch.cat([r.inputs["input_ids"] for r in run])
            out.append(Batch({"input_ids": ids}, torch.cat([r.target for r in run])))
            run = []
        if b is not None:
            run.append(b)
    return out


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
    "stack_windows",
]
