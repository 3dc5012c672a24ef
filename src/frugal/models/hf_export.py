"""Write a frugal Whisper as a transformers folder (`save_pretrained`): float32 weights on the
format's grid (what transformers can run), the quantization record in frugal_quant.json and
in the safetensors metadata. Modules on native kernels are written back as plain Linears."""

from __future__ import annotations

from pathlib import Path

from frugal.models.whisper import WhisperASR


def export_hf(asr: WhisperASR, folder: str | Path) -> Path:
    """A transformers folder loadable by `WhisperForConditionalGeneration.from_pretrained`."""
    from frugal.nn.artifact import write_quant_record

    return write_quant_record(asr.save(folder), asr.source.get("quantization"))


__all__ = ["export_hf"]
