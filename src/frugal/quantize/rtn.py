"""Round-to-nearest (RTN) weight quantization of a loaded Whisper, and saving the result."""

from __future__ import annotations

from pathlib import Path

from frugal.models.whisper import WhisperASR
from frugal.nn import QuantConfig, rtn_weights
from frugal.quantize.artifact import save_packed_model, write_quant_record

# Every Linear inside the encoder/decoder blocks; convolutions, embeddings and the tied
# output projection stay in full precision (the usual weight-quantization recipe).
WHISPER_BLOCKS = "model.*.layers.*"


def quantize_rtn(asr: WhisperASR, fmt: str, pattern: str = WHISPER_BLOCKS) -> dict:
    """Quantize matching weights in place; returns a record (config, per-module formats,
    average bits per quantized weight)."""
    config = QuantConfig.weights_only(fmt, pattern)
    modules = rtn_weights(asr.model, config)
    if not modules:
        raise ValueError(f"no module of {asr.name} matches {pattern!r}")
    n = sum(m["elements"] for m in modules.values())
    record = {
        "method": "rtn",
        "config": config.to_dict(),
        "modules": modules,
        "quantized_weights": n,
        "bits_per_weight": sum(m["bits_per_element"] * m["elements"] for m in modules.values()) / n,
        "base_model": asr.name,
    }
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
