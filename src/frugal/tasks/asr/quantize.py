"""Quantize a loaded Whisper with RTN, GPTQ or QAT, calibrated on utterances' audio and
reference transcripts; the record lands in `asr.source` so `save_quantized` keeps it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from frugal.data.datasets import Utterance
from frugal.models.whisper import WhisperASR
from frugal.nn import QuantConfig, rtn_weights
from frugal.nn.artifact import save_packed_model, write_quant_record
from frugal.quantize import GPTQConfig, QATConfig, check_method, make_recipe, quantize
from frugal.quantize.methods import summarize_modules
from frugal.tasks.asr.calibration import WHISPER_BLOCKS, WHISPER_STACKS, teacher_batches


def quantize_whisper(
    asr: WhisperASR,
    fmt: str,
    method: str = "rtn",
    calibration: Sequence[Utterance] = (),
    pattern: str = WHISPER_BLOCKS,
    batch_size: int = 4,
    gptq: GPTQConfig | None = None,
    qat: QATConfig | None = None,
    vocab_format: str | None = None,
) -> dict:
    """Quantize `asr` in place; returns the record (method, configs, modules, bits/weight,
    calibration utterance ids). `vocab_format` also rounds (RTN) the tied vocabulary
    projection / token embeddings, the largest tensor of small Whispers, to that format
    (measured on tiny.en: 4-bit needs small groups, int4_g32 or nf4_b32; int4_g128 loops)."""
    check_method(method, fmt)
    if vocab_format is not None:
        check_method("rtn", vocab_format)
    batches = teacher_batches(asr, calibration, batch_size) if method != "rtn" else []
    recipe = make_recipe(method, fmt, pattern, gptq=gptq, qat=qat)
    record = quantize(asr.model, recipe, batches, stacks=WHISPER_STACKS)
    if vocab_format is not None:
        vocab = rtn_weights(asr.model, QuantConfig.weights_only(vocab_format, "proj_out"))
        record["modules"].update(vocab)
        record.update(summarize_modules(record["modules"]))
        record["vocab_format"] = vocab_format
    record["base_model"] = asr.name
    record["calibration_ids"] = [u.id for u in calibration] if method != "rtn" else []
    asr.source["quantization"] = record
    return record


def save_quantized(asr: WhisperASR, folder: str | Path) -> Path:
    """A transformers folder (configs, tokenizer, feature extractor) whose model.safetensors
    holds the quantized weights packed (codes + scales; other tensors in fp16 where that is
    lossless), plus frugal_quant.json with the record, the storage figures and versions.
    `frugal.load(folder)` gives back exactly the same values."""
    folder = Path(folder)
    record = asr.source.get("quantization")
    asr.save_configs(folder)
    save_packed_model(asr.model, folder, record, asr.float_state_dict())
    return write_quant_record(folder, record)


__all__ = ["quantize_whisper", "save_quantized"]
