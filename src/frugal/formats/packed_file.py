"""A state dict in one safetensors file with quantized tensors stored packed.

A packed tensor `name` is stored as `name:codes` (+ `name:scales` / `name:exponents` /
`name:zeros`); the header's metadata entry `frugal_packed` (JSON) gives its format, shape and
bits per code. Every other float tensor is stored in fp16 when that is lossless (checkpoints
that came from fp16 lose nothing) and in fp32 otherwise; reading gives float32 back. Tensors
that share storage (tied weights) are stored once and listed under `frugal_aliases`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from frugal.formats.packing import Packed, unpack

PACKED_KEY = "frugal_packed"
ALIASES_KEY = "frugal_aliases"
SEP = ":"


def compact_dense(t: torch.Tensor) -> torch.Tensor:
    """`t` in fp16 when the cast is exact, else as it is (float tensors; others unchanged)."""
    if t.is_floating_point() and t.dtype != torch.float16:
        half = t.to(torch.float16)
        if torch.equal(half.float(), t.float()):  # NaN never compares equal: stays as it is
            return half
    return t


def write_packed(
    path: str | Path,
    state: dict[str, torch.Tensor],
    packed: dict[str, Packed],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write `state` with the entries named in `packed` replaced by their codes and scales."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}

    def key(t: torch.Tensor) -> tuple:
        return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)

    seen = {key(state[name]): name for name in packed if name in state}
    for name, t in state.items():
        if name in packed:
            continue
        if t.numel() and key(t) in seen:
            aliases[name] = seen[key(t)]
            continue
        seen[key(t)] = name
        tensors[name] = compact_dense(t.detach().cpu()).contiguous()
    layout = {}
    for name, p in packed.items():
        layout[name] = {"format": p.format, "shape": list(p.shape), "bits": p.bits}
        for role, t in p.tensors().items():
            tensors[f"{name}{SEP}{role}"] = t.contiguous()
    meta = {"format": "pt", PACKED_KEY: json.dumps(layout), ALIASES_KEY: json.dumps(aliases)}
    meta.update(metadata or {})
    path = Path(path)
    save_file(tensors, str(path), metadata=meta)
    return path


def read_packed(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Packed], dict]:
    """(float32 state dict with packed tensors decoded, the packed tensors, metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata() or {})
        raw = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    layout = json.loads(meta.get(PACKED_KEY, "{}"))
    packed: dict[str, Packed] = {}
    for name, info in layout.items():
        roles = {
            r: raw.pop(f"{name}{SEP}{r}", None)
            for r in ("codes", "scales", "exponents", "zeros", "native")
        }
        if roles["codes"] is None and roles["native"] is None:
            raise ValueError(f"{path}: packed tensor {name!r} has no codes")
        packed[name] = Packed(
            info["format"],
            tuple(info["shape"]),
            int(info["bits"]),
            roles["codes"] if roles["codes"] is not None else torch.empty(0, dtype=torch.uint8),
            roles["scales"],
            roles["exponents"],
            roles["zeros"],
            roles["native"],
        )
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in raw.items()}
    for name, p in packed.items():
        state[name] = unpack(p)
    for alias, target in json.loads(meta.get(ALIASES_KEY, "{}")).items():
        state[alias] = state[target]
    return state, packed, meta


def is_packed_file(path: str | Path) -> bool:
    """Whether a safetensors file was written by `write_packed`."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return PACKED_KEY in (f.metadata() or {})


__all__ = ["compact_dense", "is_packed_file", "read_packed", "write_packed"]
