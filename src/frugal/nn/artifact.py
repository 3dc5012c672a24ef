"""Quantized models on disk: a transformers folder whose model.safetensors holds every
quantized weight packed (codes + scales, `frugal.formats.packed_file`), the format in its
metadata, plus frugal_quant.json with the full record, the storage figures and the versions."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from frugal.formats.packed_file import write_packed
from frugal.formats.packing import Packed, format_bits, is_packable, pack
from frugal.provenance import versions

QUANT_FILE = "frugal_quant.json"
WEIGHTS_FILE = "model.safetensors"


def write_quant_record(folder: str | Path, record: dict | None) -> Path:
    """Add the quantization record to a saved transformers folder: frugal_quant.json, and a
    `frugal_quantization` entry (method, config) in each safetensors file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    (folder / QUANT_FILE).write_text(
        json.dumps({"quantization": record, "versions": versions()}, indent=1)
    )
    if record:
        brief = json.dumps({k: record.get(k) for k in ("method", "config", "bits_per_weight")})
        for path in folder.glob("*.safetensors"):
            with safe_open(str(path), "pt") as f:
                meta = dict(f.metadata() or {})
                if meta.get("frugal_quantization") == brief:
                    continue
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            meta.setdefault("format", "pt")
            meta["frugal_quantization"] = brief
            save_file(tensors, str(path), metadata=meta)
    return folder


def read_quant_record(folder: str | Path) -> dict | None:
    """The record written by `write_quant_record`, or None for an unquantized folder."""
    path = Path(folder) / QUANT_FILE
    return json.loads(path.read_text()).get("quantization") if path.is_file() else None


def pack_modules(model: nn.Module, record: dict) -> dict[str, Packed]:
    """The packed weight of every module the record quantized in a packable format, by
    parameter name (`<module>.weight`)."""
    out = {}
    for name, info in (record or {}).get("modules", {}).items():
        if is_packable(info["format"]):
            out[f"{name}.weight"] = pack(model.get_submodule(name).weight, info["format"])
    return out


def storage_summary(packed: dict[str, Packed], path: Path) -> dict:
    """Bytes on disk, and bits per quantized weight as stored (scales and padding included)."""
    n = sum(p.numel for p in packed.values())
    return {
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "packed_weights": n,
        "packed_bits_per_weight": sum(format_bits(p) * p.numel for p in packed.values())
        / max(1, n),
    }


def save_packed_model(
    model: nn.Module,
    folder: str | Path,
    record: dict | None,
    state: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Write `model`'s weights (or `state`, its state dict under the names to load) to
    folder/model.safetensors, quantized ones packed; returns the storage summary (also added
    to the record as `storage`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    packed = pack_modules(model, record or {})
    brief = {k: (record or {}).get(k) for k in ("method", "config", "bits_per_weight")}
    path = write_packed(
        folder / WEIGHTS_FILE,
        model.state_dict() if state is None else state,
        packed,
        {"frugal_quantization": json.dumps(brief)},
    )
    summary = storage_summary(packed, path)
    if record is not None:
        record["storage"] = summary
    return summary


__all__ = [
    "QUANT_FILE",
    "WEIGHTS_FILE",
    "pack_modules",
    "read_quant_record",
    "save_packed_model",
    "storage_summary",
    "write_quant_record",
]
