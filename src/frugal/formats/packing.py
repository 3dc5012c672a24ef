"""Packed storage of values on a format's grid: element codes, bit-packed, plus the shared
scales (fp16 for intN/NF4 groups, E8M0 exponents for MX/BFP blocks, N-bit zero points for
asymmetric intN).

`pack(w, fmt)` reads the codes and scales off values that are already on `fmt`'s grid (as
RTN, GPTQ and QAT leave them) and checks that decoding gives every value back exactly;
values off the grid are an error, never silently re-rounded. `unpack` returns float32 values
equal to the simulated ones (a negative zero comes back as +0)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from frugal.formats.base import NumberFormat
from frugal.formats.integer import IntFormat
from frugal.formats.minifloat import FLOAT_SPECS, FloatSpec, MinifloatFormat
from frugal.formats.mx import MX_FLOAT_ELEMENTS, SCALE_EMAX, MXFormat
from frugal.formats.nf4 import NF4_LEVELS, NF4Format
from frugal.formats.registry import get_format


class NotPackableError(ValueError):
    """A format without a packed layout, or values that are not on the format's grid."""


@dataclass
class Packed:
    """One tensor in a packed format: `codes` (uint8, `bits` per element, little-endian bit
    order), and per group `scales` (fp16), `exponents` (uint8, E8M0 biased by 127) or
    `zeros` (N-bit zero points, bit-packed like the codes) as the format needs, one per group
    of the (rows, cols) view, groups along the last axis."""

    format: str
    shape: tuple[int, ...]
    bits: int
    codes: torch.Tensor
    scales: torch.Tensor | None = None
    exponents: torch.Tensor | None = None
    zeros: torch.Tensor | None = None
    native: torch.Tensor | None = None  # fp16 / bf16 values stored as themselves
    extra: dict = field(default_factory=dict)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors to store, by role."""
        named = {
            "codes": self.codes,
            "scales": self.scales,
            "exponents": self.exponents,
            "zeros": self.zeros,
            "native": self.native,
        }
        return {k: v for k, v in named.items() if v is not None}

    @property
    def nbytes(self) -> int:
        """Bytes of the stored tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values())


# --- code books --------------------------------------------------------------------------


def float_codebook(spec: FloatSpec) -> torch.Tensor:
    """Value of every bit pattern of a minifloat (sign, exponent, mantissa), float32; codes
    that are inf or NaN get NaN (they never match a finite value)."""
    n = 2**spec.bits
    codes = np.arange(n)
    sign = np.where(codes >> (spec.bits - 1), -1.0, 1.0)
    e = (codes >> spec.mbits) & (2**spec.ebits - 1)
    m = codes & (2**spec.mbits - 1)
    frac = m / 2**spec.mbits
    value = np.where(
        e == 0,
        frac * 2.0 ** (1 - spec.bias),
        (1 + frac) * 2.0 ** (e.astype(np.float64) - spec.bias),
    )
    value = sign * value
    top = e == 2**spec.ebits - 1
    if spec.ieee:
        value[top] = np.nan
    elif spec.fn:
        value[top & (m == 2**spec.mbits - 1)] = np.nan
    return torch.tensor(value, dtype=torch.float32)


@lru_cache(maxsize=64)
def _layout(name: str) -> tuple[str, int, torch.Tensor | None]:
    """(kind, bits per code, code book of element values) of a packable format."""
    fmt = get_format(name)
    if isinstance(fmt, IntFormat):
        if fmt.symmetric:
            half = 2 ** (fmt.bits - 1)
            return "int", fmt.bits, torch.arange(-half, half, dtype=torch.float32)
        return "int_asym", fmt.bits, torch.arange(0, 2**fmt.bits, dtype=torch.float32)
    if isinstance(fmt, MXFormat):
        if fmt.float_spec is not None:
            return "mx", fmt.elem_bits, float_codebook(fmt.float_spec)
        half = 2 ** (fmt.int_bits - 1)
        # sign-magnitude integers k / 2^(bits-2), |k| <= 2^(bits-1) - 1: code k + half
        book = torch.arange(-half, half, dtype=torch.float32) / 2 ** (fmt.int_bits - 2)
        book[0] = float("nan")  # -half is not an MX integer element
        return "mx", fmt.int_bits, book
    if isinstance(fmt, NF4Format):
        return "nf4", 4, torch.tensor(NF4_LEVELS, dtype=torch.float32)
    if isinstance(fmt, MinifloatFormat):
        if fmt.kind in ("fp16", "bf16"):
            return "native", fmt.spec.bits, None
        return "float", fmt.spec.bits, float_codebook(FLOAT_SPECS[fmt.kind])
    raise NotPackableError(
        f"{fmt.name} has no packed layout (packable: intN, MX/BFP, NF4 and minifloats)"
    )


def is_packable(fmt: str | NumberFormat) -> bool:
    """Whether `pack` has a layout for the format."""
    try:
        _layout(fmt if isinstance(fmt, str) else fmt.name)
    except NotPackableError:
        return False
    return True


# --- bit packing -------------------------------------------------------------------------


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes (< 2^bits) into a uint8 stream, `bits` per code, least significant bit first."""
    c = codes.reshape(-1).to(torch.uint8).numpy()
    if bits == 8:
        return torch.from_numpy(c.copy())
    planes = np.empty((c.size, bits), np.uint8)  # one byte per bit: n * bits bytes at most
    for b in range(bits):
        planes[:, b] = (c >> b) & 1
    return torch.from_numpy(np.packbits(planes.reshape(-1), bitorder="little"))


def unpack_bits(stream: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of `pack_bits`: `count` codes as uint8."""
    s = stream.reshape(-1).numpy()
    if bits == 8:
        return torch.from_numpy(s[:count].copy())
    planes = np.unpackbits(s, count=count * bits, bitorder="little").reshape(count, bits)
    codes = np.zeros(count, np.uint8)
    for b in range(bits):
        codes |= planes[:, b] << b
    return torch.from_numpy(codes)


# --- groups ------------------------------------------------------------------------------


def _view(fmt: NumberFormat, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(rows, cols, group) of the 2-D view the format's scales live on: per tensor one row,
    per channel the first axis against the rest, block and group formats the last axis
    (each row zero-padded to a whole number of groups, as the formats do)."""
    n = math.prod(shape)
    if isinstance(fmt, IntFormat) and fmt.granularity != "group":
        if fmt.granularity == "tensor" or len(shape) < 2:
            return 1, n, n
        return shape[0], n // shape[0], n // shape[0]
    if isinstance(fmt, MXFormat) and fmt.axis not in (-1, len(shape) - 1):
        raise NotPackableError(f"{fmt.name}: packing needs blocks along the last axis")
    group = fmt.group if isinstance(fmt, IntFormat) else fmt.block
    cols = shape[-1] if shape else 1
    return n // max(1, cols), cols, group


def _grouped(x: torch.Tensor, rows: int, cols: int, group: int) -> torch.Tensor:
    """(n_groups, group) view of float32 `x` on its (rows, cols) view."""
    flat = x.reshape(rows, cols)
    pad = (-cols) % group
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    return flat.reshape(-1, group)


def _lookup(q: torch.Tensor, book: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the code-book entry nearest each value of `q`, and whether it is equal."""
    finite = ~torch.isnan(book)
    values, order = torch.sort(book[finite])
    mids = (values[1:] + values[:-1]) / 2
    idx = torch.bucketize(q.contiguous(), mids)
    return torch.nonzero(finite)[:, 0][order][idx], values[idx] == q


def _fp16_exact(s: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(s) & (s.to(torch.float16).float() == s)


def _pow2_exact(s: torch.Tensor) -> torch.Tensor:
    m, _ = torch.frexp(s)
    e = torch.floor(torch.log2(s))
    return (m == 0.5) & (e >= -SCALE_EMAX) & (e <= SCALE_EMAX)


def _solve_scales(
    g: torch.Tensor, book: torch.Tensor, first: torch.Tensor, scale_ok
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group a scale s with every value = book[code] * s exactly: the format's own fit
    `first`, else amax / |c| for each magnitude c in the book (GPTQ may leave the largest
    value at another code than RTN would). Returns (scales, codes)."""
    amax = g.abs().amax(-1)
    mags = torch.unique(book[torch.isfinite(book)].abs())
    mags = mags[mags > 0].flip(0)
    nonzero = torch.nonzero(amax > 0)[:, 0]
    if len(nonzero) > 64:
        # a few groups against every candidate at once first: a tensor that is not on the
        # grid (any trained weight) fails there, not after one pass per candidate over all
        probe = nonzero[:: len(nonzero) // 8][:8]
        cands = torch.stack([first[probe], *(amax[probe] / c for c in mags)], 1)
        head = g[probe, :8]
        idx, _ = _lookup(head[:, None, :] / cands[..., None], book)
        fits = scale_ok(cands) & (cands > 0)
        fits &= (book[idx] * cands[..., None] == head[:, None, :]).all(-1)
        if not bool(fits.any(1).all()):
            raise NotPackableError("a group has no scale that puts its values on the grid")
    scales = torch.zeros_like(amax)
    codes = torch.zeros(g.shape, dtype=torch.long)
    zero_idx, _ = _lookup(torch.zeros(1), book)
    codes[:] = zero_idx
    todo = amax > 0
    candidates = [first, *(amax / c for c in mags)]
    for cand in candidates:
        if not bool(todo.any()):
            break
        rows = torch.nonzero(todo)[:, 0]
        s = cand[rows]
        ok = scale_ok(s) & (s > 0)
        # a few elements first: off-grid values fail there, so a dense tensor costs little
        head = g[rows, :8]
        idx, _ = _lookup(head / s[:, None], book)
        ok &= (book[idx] * s[:, None] == head).all(-1)
        rows, s = rows[ok], s[ok]
        idx, _ = _lookup(g[rows] / s[:, None], book)  # nearest: L * s need not divide back
        ok = (book[idx] * s[:, None] == g[rows]).all(-1)
        good = rows[ok]
        scales[good] = s[ok]
        codes[good] = idx[ok]
        todo[good] = False
    if bool(todo.any()):
        raise NotPackableError(f"{int(todo.sum())} group(s) are not on the format's grid")
    return scales, codes


def pack(w: torch.Tensor, fmt: str | NumberFormat) -> Packed:
    """Codes and scales of float values already on `fmt`'s grid (NotPackableError if not).
    NaN and inf are not storable."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    kind, bits, book = _layout(fmt.name)
    w = w.detach().float().cpu()
    shape = tuple(w.shape)
    if not bool(torch.isfinite(w).all()):
        raise NotPackableError(f"{fmt.name}: NaN or inf values cannot be packed")
    if kind == "native":
        dtype = torch.float16 if fmt.name == "fp16" else torch.bfloat16
        native = w.to(dtype)
        if not bool((native.float() == w).all()):
            raise NotPackableError(f"values are not on the {fmt.name} grid")
        return Packed(fmt.name, shape, bits, torch.empty(0, dtype=torch.uint8), native=native)
    if kind == "float":
        codes, hit = _lookup(w.reshape(-1), book)
        if not bool(hit.all()):
            raise NotPackableError(f"{int((~hit).sum())} value(s) are not on the {fmt.name} grid")
        return Packed(fmt.name, shape, bits, pack_bits(codes, bits))
    rows, cols, group = _view(fmt, shape)
    g = _grouped(w, rows, cols, group)
    try:
        if kind == "int":
            first = fmt._fit_rows(g)[0][:, 0]
            scales, codes = _solve_scales(g, book, first, _fp16_exact)
            out = Packed(fmt.name, shape, bits, pack_bits(codes, bits), scales=scales.half())
        elif kind == "nf4":
            scales, codes = _solve_scales(g, book, fmt.fit(g)[:, 0], _fp16_exact)
            out = Packed(fmt.name, shape, bits, pack_bits(codes, bits), scales=scales.half())
        elif kind == "mx":
            first = fmt.fit(g)[:, 0]
            scales, codes = _solve_scales(g, book, first, _pow2_exact)
            exps = torch.where(scales > 0, torch.log2(scales), torch.full_like(scales, -127.0))
            out = Packed(
                fmt.name,
                shape,
                bits,
                pack_bits(codes, bits),
                exponents=(exps.round().to(torch.int64) + SCALE_EMAX).to(torch.uint8),
            )
        else:
            out = _pack_asym(fmt, g, shape, bits, book)
    except NotPackableError as exc:
        raise NotPackableError(f"values are not on the {fmt.name} grid: {exc}") from None
    check = unpack(out)
    if not bool((check == w).all()):  # never store something that does not decode exactly
        raise NotPackableError(f"values are not on the {fmt.name} grid")
    return out


def _pack_asym(fmt: IntFormat, g: torch.Tensor, shape, bits: int, book) -> Packed:
    """Asymmetric intN: value = (code - zero) * scale with code, zero in [0, 2^N - 1]."""
    qmax = 2**bits - 1
    lo = g.amin(-1).clamp(max=0)
    hi = g.amax(-1).clamp(min=0)
    span = hi - lo
    scales = torch.zeros_like(span)
    zeros = torch.zeros_like(span)
    ints = torch.zeros_like(g)
    todo = span > 0
    first = fmt._fit_rows(g)[0][:, 0]
    for cand in [first, *(span / m for m in range(qmax, 0, -1))]:
        if not bool(todo.any()):
            break
        rows = torch.nonzero(todo)[:, 0]
        s = cand[rows]
        n = g[rows] / s[:, None]
        z = (-n.amin(-1)).clamp(min=0)
        ok = _fp16_exact(s) & (s > 0) & (n == torch.round(n)).all(-1)
        ok &= (n * s[:, None] == g[rows]).all(-1) & (n.amax(-1) + z <= qmax) & (z <= qmax)
        good = rows[ok]
        scales[good], zeros[good], ints[good] = s[ok], z[ok], n[ok]
        todo[good] = False
    if bool(todo.any()):
        raise NotPackableError(f"{int(todo.sum())} group(s) are not on the format's grid")
    codes = (ints + zeros[:, None]).to(torch.int64)
    return Packed(
        fmt.name,
        shape,
        bits,
        pack_bits(codes, bits),
        scales=scales.half(),
        zeros=pack_bits(zeros.to(torch.int64), bits),
    )


def group_codes(p: Packed) -> torch.Tensor:
    """Element codes (uint8) in the (n_groups, group) layout of `p`'s scales."""
    rows, cols, group = _view(get_format(p.format), p.shape)
    padded = rows * (-(-cols // group) * group)
    return unpack_bits(p.codes, p.bits, padded).reshape(-1, group)


# elements decoded at a time: the int32 codes and looked-up values of a 51,864 × 384 vocabulary
# would otherwise sit beside the result (~3x its size at the peak of loading a model)
UNPACK_CHUNK = 1 << 20


def unpack(p: Packed) -> torch.Tensor:
    """Float32 values of a packed tensor, equal to the simulated format's values (decoded
    `UNPACK_CHUNK` elements at a time into the result)."""
    kind, bits, book = _layout(p.format)
    if kind == "native":
        return p.native.float().reshape(p.shape)
    if kind == "float":
        return book[unpack_bits(p.codes, bits, p.numel).int()].reshape(p.shape)
    rows, cols, _ = _view(get_format(p.format), p.shape)
    codes = group_codes(p)
    if kind == "mx":
        scale = torch.exp2(p.exponents.to(torch.float32) - SCALE_EMAX)
    else:
        scale = p.scales.float()
    zeros = unpack_bits(p.zeros, p.bits, codes.shape[0]).float() if kind == "int_asym" else None
    g = torch.empty(codes.shape, dtype=torch.float32)
    n_groups, group = codes.shape
    step_g = max(1, UNPACK_CHUNK // group)
    step_c = min(group, UNPACK_CHUNK)
    for g0 in range(0, n_groups, step_g):
        sl = slice(g0, g0 + step_g)
        for c0 in range(0, group, step_c):
            part = codes[sl, c0 : c0 + step_c].int()
            vals = part.float().sub_(zeros[sl, None]) if zeros is not None else book[part]
            torch.mul(vals, scale[sl, None], out=g[sl, c0 : c0 + step_c])
    return g.reshape(rows, -1)[:, :cols].reshape(p.shape)


def format_bits(p: Packed) -> float:
    """Stored bits per element of `p` (codes and scales; byte padding included)."""
    return 8 * p.nbytes / max(1, p.numel)


__all__ = [
    "MX_FLOAT_ELEMENTS",
    "NotPackableError",
    "Packed",
    "float_codebook",
    "format_bits",
    "group_codes",
    "is_packable",
    "pack",
    "pack_bits",
    "unpack",
    "unpack_bits",
]
