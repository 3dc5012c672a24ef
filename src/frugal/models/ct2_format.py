"""Reader for CTranslate2's `model.bin` (the format faster-whisper checkpoints ship in).

Layout (binary version 6, little endian): uint32 version, uint16-length-prefixed spec name,
uint32 revision, uint32 variable count, then per variable a uint16-length-prefixed name,
uint8 rank, rank x uint32 dims, uint8 dtype, uint32 byte count and the raw bytes; then uint32
alias count and (alias, target) name pairs. Strings are NUL-terminated inside their length.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# CTranslate2's DataType enum.
CT2_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: raw bits, widened to float32 on read
}
CT2_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
SUPPORTED_VERSIONS = (6,)


class CT2FormatError(ValueError):
    """A model.bin that is truncated, of an unknown version or with an unknown dtype."""


@dataclass
class CT2Model:
    """Variables of a CTranslate2 model, by name, as numpy arrays (views on the file bytes)."""

    spec: str
    version: int
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int | float:
        """A rank-0 variable as a Python number (e.g. `encoder/num_heads`)."""
        return self[name].reshape(()).item()

    def float_weight(self, name: str) -> np.ndarray:
        """A weight as float32, dequantized with its `<name>_scale` when stored as integers.

        CTranslate2 stores q = round(w * scale) with one scale per output row, so w = q / scale.
        """
        name = self.aliases.get(name, name)  # an alias shares its target's scale too
        w = self[name]
        base = name.rsplit("/", 1)[0]
        scale_name = f"{base}/weight_scale" if name.endswith("/weight") else f"{name}_scale"
        if w.dtype.kind == "i" and scale_name in self:
            scale = self[scale_name].astype(np.float32)
            shape = (-1,) + (1,) * (w.ndim - 1) if scale.ndim == 1 else ()
            return w.astype(np.float32) / scale.reshape(shape)
        if w.dtype == np.dtype("<u2") and self.dtypes.get(name) == "bfloat16":
            return (w.astype(np.uint32) << 16).view(np.float32)
        return w.astype(np.float32)


class _Cursor:
    def __init__(self, buf: memoryview, source: str):
        self.buf, self.pos, self.source = buf, 0, source

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise CT2FormatError(
                f"{self.source}: truncated at byte {self.pos} (needs {n} more, "
                f"file has {len(self.buf)}); is a part of a split checkpoint missing?"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.u16()))
        return raw.rstrip(b"\0").decode("utf-8")


def read_ct2_bytes(data: bytes | bytearray | memoryview, source: str = "model.bin") -> CT2Model:
    """Parse the bytes of a model.bin; arrays are zero-copy views on `data`."""
    cur = _Cursor(memoryview(data), source)
    version = cur.u32()
    if version not in SUPPORTED_VERSIONS:
        raise CT2FormatError(
            f"{source}: model.bin binary version {version} is not supported "
            f"(frugal reads version {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    model = CT2Model(spec=cur.string(), version=version, revision=cur.u32())
    for _ in range(cur.u32()):
        name = cur.string()
        dims = tuple(cur.u32() for _ in range(cur.u8()))
        code = cur.u8()
        nbytes = cur.u32()
        if code not in CT2_DTYPES:
            raise CT2FormatError(f"{source}: variable {name!r} has unknown dtype code {code}")
        dtype = CT2_DTYPES[code]
        raw = cur.take(nbytes)
        count = int(np.prod(dims)) if dims else 1
        if count * dtype.itemsize != nbytes:
            raise CT2FormatError(
                f"{source}: variable {name!r} declares {dims} x {CT2_DTYPE_NAMES[code]} "
                f"but holds {nbytes} bytes"
            )
        model.variables[name] = np.frombuffer(raw, dtype=dtype).reshape(dims)
        model.dtypes[name] = CT2_DTYPE_NAMES[code]
    if cur.pos < len(cur.buf):
        for _ in range(cur.u32()):
            alias = cur.string()
            model.aliases[alias] = cur.string()
    return model


def read_ct2_model(paths: str | Path | Sequence[str | Path]) -> CT2Model:
    """Read a model.bin, or the ordered parts of one split into several files."""
    parts = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    for p in parts:
        if not p.is_file():
            raise FileNotFoundError(f"CTranslate2 model file not found: {p}")
    data = parts[0].read_bytes() if len(parts) == 1 else b"".join(p.read_bytes() for p in parts)
    source = str(parts[0]) if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} parts)"
    return read_ct2_bytes(data, source)
