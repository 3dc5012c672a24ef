"""Quantize a loaded Whisper with RTN, GPTQ or QAT, calibrated on utterances' audio and
reference transcripts; the record lands in `asr.source` so `save_quantized` keeps it."""

from __future__ import annotations

from collections.abc import Sequence

from frugal.data.datasets import Utterance
from frugal.models.whisper import WhisperASR
from frugal.quantize import WHISPER_BLOCKS, GPTQConfig, QATConfig, check_method, quantize_model
from frugal.tasks.asr.calibration import WHISPER_STACKS, teacher_batches


def quantize_whisper(
    asr: WhisperASR,
    fmt: str,
    method: str = "rtn",
    calibration: Sequence[Utterance] = (),
    pattern: str = WHISPER_BLOCKS,
    batch_size: int = 4,
    gptq: GPTQConfig | None = None,
    qat: QATConfig | None = None,
) -> dict:
    """Quantize `asr` in place; returns the record (method, configs, modules, bits/weight,
    calibration utterance ids)."""
    check_method(method, fmt)
    batches = teacher_batches(asr, calibration, batch_size) if method != "rtn" else []
    record = quantize_model(
        asr.model, method, fmt, pattern, batches, gptq=gptq, qat=qat, stacks=WHISPER_STACKS
    )
    record["base_model"] = asr.name
    record["calibration_ids"] = [u.id for u in calibration] if method != "rtn" else []
    asr.source["quantization"] = record
    return record


__all__ = ["quantize_whisper"]
