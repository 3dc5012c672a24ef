"""Read a GGUF file (llama.cpp's model format): metadata, tensor layout, raw and dequantized
tensors, memory-mapped.

The `gguf` package's reader builds a numpy view for every field part (~4 s and 300k objects for
a 49k-token vocabulary); this one reads the header with `struct` in one pass (~0.1 s) and maps
tensor data lazily. Dequantization itself is the `gguf` package's (`gguf.quants`), imported only
when a quantized tensor is asked for. Layout (GGUF v2/v3): magic, version, tensor count, key/value
count, the key/values, the tensor infos (name, dims innermost first, ggml type, offset), padding
to `general.alignment` (32 by default), then the tensor data.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types -> struct format (scalars); 8 = string, 9 = array
_SCALARS = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
    12: "<d",
}  # fmt: skip
_NUMPY = {
    0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
    6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64,
}  # fmt: skip
STRING, ARRAY = 8, 9

# ggml tensor types frugal reads or writes without the gguf package: type -> numpy dtype
PLAIN_TYPES = {0: np.float32, 1: np.float16, 24: np.int8, 26: np.int32, 28: np.float64}
# ggml types whose element grid frugal writes exactly (formats/gguf_blocks.py): name -> id
F32, F16, Q4_0, Q4_1, Q8_0 = 0, 1, 2, 3, 8


class GGUFError(ValueError):
    """A file that is not a readable GGUF file (bad magic, truncated, unknown value type)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's layout: `shape` in numpy (row-major) order, `ggml_type` the ggml type id,
    `offset` from the start of the file, `nbytes` its stored size (bytes)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int


def block_geometry(ggml_type: int) -> tuple[int, int]:
    """(elements per block, bytes per block) of a ggml type."""
    if ggml_type in PLAIN_TYPES:
        return 1, np.dtype(PLAIN_TYPES[ggml_type]).itemsize
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise GGUFError(f"unknown ggml tensor type {ggml_type}") from None


def type_name(ggml_type: int) -> str:
    """The ggml type's name (Q4_K, F16, ...)."""
    try:
        from gguf.constants import GGMLQuantizationType

        return GGMLQuantizationType(ggml_type).name
    except (ImportError, ValueError):
        return {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0"}.get(ggml_type, str(ggml_type))


class _Cursor:
    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str):
        try:
            (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error:
            raise GGUFError(f"{self.path}: truncated GGUF header") from None
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        end = self.pos + n
        if end > len(self.buf):
            raise GGUFError(f"{self.path}: truncated GGUF header")
        raw = bytes(self.buf[self.pos : end])
        self.pos = end
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if etype in _NUMPY:
                dt = np.dtype(_NUMPY[etype])
                end = self.pos + count * dt.itemsize
                if end > len(self.buf):
                    raise GGUFError(f"{self.path}: truncated GGUF header")
                arr = np.frombuffer(self.buf, dt, count, self.pos).copy()
                self.pos = end
                return arr.tolist()
            return [self.value(etype) for _ in range(count)]
        raise GGUFError(f"{self.path}: unknown GGUF value type {vtype} at byte {self.pos}")


class GGUFFile:
    """A GGUF file, opened read-only and memory-mapped. `metadata` maps keys to Python values
    (arrays as lists); `tensors` maps names to `TensorInfo` in file order."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no GGUF file at {self.path}")
        with open(self.path, "rb") as f:
            size = self.path.stat().st_size
            if size < 24:
                raise GGUFError(f"{self.path}: {size} bytes is too short for a GGUF file")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cur = _Cursor(self._map, self.path)
        if bytes(self._map[:4]) != MAGIC:
            raise GGUFError(f"{self.path}: not a GGUF file (magic {bytes(self._map[:4])!r})")
        cur.pos = 4
        self.version = cur.unpack("<I")
        if self.version not in (2, 3):
            raise GGUFError(f"{self.path}: GGUF version {self.version} (frugal reads 2 and 3)")
        n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
        self.metadata: dict[str, Any] = {}
        # key -> (GGUF value type, element type of an array or None): a writer copying the
        # metadata keeps the types llama.cpp checks
        self.value_types: dict[str, tuple[int, int | None]] = {}
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.unpack("<I")
            element = None
            if vtype == ARRAY:
                element = struct.unpack_from("<I", self._map, cur.pos)[0]
            self.metadata[key] = cur.value(vtype)
            self.value_types[key] = (vtype, element)
        infos = []
        for _ in range(n_tensors):
            name = cur.string()
            dims = [cur.unpack("<Q") for _ in range(cur.unpack("<I"))]
            infos.append((name, tuple(reversed(dims)), cur.unpack("<I"), cur.unpack("<Q")))
        align = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        self.data_start = -(-cur.pos // align) * align
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, gtype, rel in infos:
            block, block_bytes = block_geometry(gtype)
            count = int(np.prod(shape, dtype=np.int64))
            if count % block:
                raise GGUFError(
                    f"{self.path}: tensor {name} has {count} elements, not whole blocks"
                )
            info = TensorInfo(
                name, shape, gtype, self.data_start + rel, count // block * block_bytes
            )
            if info.offset + info.nbytes > size:
                raise GGUFError(
                    f"{self.path}: tensor {name} ends at byte {info.offset + info.nbytes} of a "
                    f"{size}-byte file (truncated?)"
                )
            self.tensors[name] = info

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of a quantized tensor as uint8 rows (one row per innermost row), or
        a plain tensor (F32, F16, ...) in its own dtype and shape; a read-only view."""
        info = self.tensors[name]
        if info.ggml_type in PLAIN_TYPES:
            dt = np.dtype(PLAIN_TYPES[info.ggml_type])
            count = info.nbytes // dt.itemsize
            return np.frombuffer(self._map, dt, count, info.offset).reshape(info.shape)
        flat = np.frombuffer(self._map, np.uint8, info.nbytes, info.offset)
        rows = int(np.prod(info.shape[:-1], dtype=np.int64))
        return flat.reshape(rows, -1) if info.shape else flat

    def dequantized(self, name: str) -> np.ndarray:
        """The tensor as float32 in numpy order (a new array)."""
        info = self.tensors[name]
        data = self.raw(name)
        if info.ggml_type in PLAIN_TYPES:
            return data.astype(np.float32)
        from gguf.constants import GGMLQuantizationType
        from gguf.quants import dequantize

        return dequantize(data, GGMLQuantizationType(info.ggml_type)).reshape(info.shape)

    def type_counts(self) -> dict[str, int]:
        """How many tensors sit on each ggml type (for notes: 'Q4_K ×120, Q6_K ×25')."""
        counts: dict[str, int] = {}
        for info in self.tensors.values():
            key = type_name(info.ggml_type)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def close(self) -> None:
        # arrays returned by raw() may still view the map: it then closes when they go
        with contextlib.suppress(BufferError):
            self._map.close()

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["GGUFError", "GGUFFile", "TensorInfo", "block_geometry", "type_name"]
