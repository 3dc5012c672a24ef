"""Quantized models on disk: a transformers folder whose safetensors carry the format in
their metadata, plus frugal_quant.json with the full record and the versions used."""

from __future__ import annotations

import json
from pathlib import Path

from frugal.provenance import versions

QUANT_FILE = "frugal_quant.json"


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
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            meta.setdefault("format", "pt")
            meta["frugal_quantization"] = brief
            save_file(tensors, str(path), metadata=meta)
    return folder


def read_quant_record(folder: str | Path) -> dict | None:
    """The record written by `write_quant_record`, or None for an unquantized folder."""
    path = Path(folder) / QUANT_FILE
    return json.loads(path.read_text()).get("quantization") if path.is_file() else None


__all__ = ["QUANT_FILE", "read_quant_record", "write_quant_record"]
