"""A "subject" of a quantization study: one model with its calibration, held-out and probe
batches and its metrics (NLL in nats per token; WER in % for speech), whatever the model
is — a packaged Whisper, a Whisper folder, a zoo LM or a causal LM folder."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from frugal.nn.batches import Batch, mean_nll, split_nll


@dataclass
class SubjectConfig:
    """How much data each subject gets: calibration examples (utterances or windows),
    held-out utterances (speech) or tokens (text), probe examples for cheap features."""

    calibration: int = 32
    heldout: int = 24
    heldout_tokens: int = 16384
    probe: int = 4
    context: int = 128
    seed: int = 0
    data: str = "builtin"
    text: tuple[str, ...] = ()
    wer: bool = True
    zoo_dir: str = "results/zoo"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SubjectConfig:
        d = dict(d)
        d["text"] = tuple(d.get("text", ()))
        return cls(**d)


@dataclass
class Subject:
    """A model and the batches it is calibrated, scored and probed on."""

    name: str
    family: str
    model: nn.Module
    pattern: str
    stacks: tuple[str, ...] | None
    calibration: list[Batch]
    heldout: list[Batch]
    probe: list[Batch]
    wer_fn: Callable[[nn.Module], float] | None = None
    info: dict = field(default_factory=dict)

    def nll(self, model: nn.Module | None = None) -> float:
        """Held-out NLL (nats per token) of `model` (default: the full-precision one)."""
        return mean_nll(self.model if model is None else model, self.heldout)

    def nll_halves(self, model: nn.Module | None = None) -> tuple[float, float, float]:
        """Held-out NLL (nats per token) and the same over each of two disjoint halves of the
        held-out data (one pass): how far the two halves' ΔNLL disagree is the noise floor."""
        return split_nll(self.model if model is None else model, self.heldout)

    def wer(self, model: nn.Module | None = None) -> float | None:
        """Held-out WER in % (speech subjects), else None."""
        return None if self.wer_fn is None else self.wer_fn(self.model if model is None else model)

    def copy_model(self) -> nn.Module:
        return copy.deepcopy(self.model)

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def is_whisper(name: str) -> bool:
    """A packaged Whisper name, a faster-whisper/transformers Whisper folder, or a hub id
    naming Whisper."""
    from frugal.models.registry import CHECKPOINTS

    if name in CHECKPOINTS:
        return True
    p = Path(name)
    if p.is_dir():
        if (p / "model.bin").is_file():
            return True
        cfg = p / "config.json"
        return cfg.is_file() and json.loads(cfg.read_text()).get("model_type") == "whisper"
    return "whisper" in name.lower()


def load_subject(name: str, config: SubjectConfig, log: Callable[[str], None] | None = None):
    """The subject called `name`: "zoo:<name>" (trained on first use), a packaged Whisper
    or causal LM (`frugal models`), a local folder or a hub id (Whisper or causal LM)."""
    from frugal.tasks.lm_zoo import ZOO

    key = name.removeprefix("zoo:")
    if name.startswith("zoo:") or key in ZOO:
        return _zoo_subject(key, config, log)
    if is_whisper(name):
        return _whisper_subject(name, config)
    return _lm_subject(name, config)


def _whisper_subject(name: str, config: SubjectConfig) -> Subject:
    import dataclasses

    from frugal.data.datasets import load_dataset
    from frugal.models.whisper import load_whisper
    from frugal.tasks.asr.calibration import (
        WHISPER_BLOCKS,
        WHISPER_STACKS,
        heldout_wer,
        split_calibration,
        teacher_batches,
    )

    asr = load_whisper(name)
    data = load_dataset(config.data, cache=True)
    calib, held = split_calibration(data, config.calibration, config.seed)
    held = held.take(config.heldout) if config.heldout < len(held) else held
    wer_fn = None
    if config.wer:

        def wer_fn(model: nn.Module) -> float:
            return heldout_wer(dataclasses.replace(asr, model=model), held).wer

    return Subject(
        name=asr.name,
        family="whisper",
        model=asr.model,
        pattern=WHISPER_BLOCKS,
        stacks=WHISPER_STACKS,
        calibration=teacher_batches(asr, calib, 4),
        heldout=teacher_batches(asr, held, 8),
        probe=teacher_batches(asr, list(calib)[: config.probe], config.probe),
        wer_fn=wer_fn,
        info={"calibration": calib.name, "heldout": held.name, "utterances": len(held)},
    )


def _lm_batches(lm, tokens: torch.Tensor, config: SubjectConfig) -> dict:
    from frugal.tasks.lm import calibration_windows, sliding_windows, stack_windows
    from frugal.tasks.lm_zoo import corpus_split

    train, held = corpus_split(tokens)
    held = held[: config.heldout_tokens]
    ctx = min(config.context, lm.max_positions - 1)
    pre = lm.text_prefix
    return {
        "calibration": calibration_windows(train, config.calibration, ctx, config.seed, 8, pre),
        "heldout": stack_windows(sliding_windows(held, ctx, ctx, pre)),
        "probe": calibration_windows(
            train, config.probe, ctx, config.seed + 7919, max(1, config.probe), pre
        ),
        "info": {"heldout_tokens": len(held), "context": ctx},
    }


def _causal_subject(lm, family: str, tokens: torch.Tensor, config: SubjectConfig) -> Subject:
    from frugal.quantize import find_stacks
    from frugal.tasks.lm import block_pattern

    b = _lm_batches(lm, tokens, config)
    return Subject(
        name=lm.name,
        family=family,
        model=lm.model,
        pattern=block_pattern(lm.model),
        stacks=tuple(find_stacks(lm.model)),
        calibration=b["calibration"],
        heldout=b["heldout"],
        probe=b["probe"],
        info=b["info"],
    )


def _zoo_subject(name: str, config: SubjectConfig, log) -> Subject:
    from frugal.tasks.lm_zoo import ZOO, corpus_text, load_zoo_model

    lm = load_zoo_model(name, config.zoo_dir, log)
    tokens = torch.tensor(list(corpus_text().encode()), dtype=torch.long)
    return _causal_subject(lm, ZOO[name].family, tokens, config)


def _lm_subject(name: str, config: SubjectConfig) -> Subject:
    from frugal.tasks.lm import load_causal_lm, read_tokens
    from frugal.tasks.lm_zoo import corpus_text

    lm = load_causal_lm(name)
    if config.text:
        tokens = read_tokens(lm, config.text)
    else:
        ids = lm.tokenizer(corpus_text(), add_special_tokens=False)["input_ids"]
        tokens = torch.tensor(ids, dtype=torch.long)
    return _causal_subject(lm, getattr(lm.model.config, "model_type", "lm"), tokens, config)


__all__ = ["Subject", "SubjectConfig", "is_whisper", "load_subject"]
