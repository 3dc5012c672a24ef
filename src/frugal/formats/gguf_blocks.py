"""llama.cpp's GGUF block formats Q4_0 and Q8_0 as frugal number formats, and their bytes.

Both cut the last axis into blocks of 32 with one fp16 scale d per block:
- Q8_0: d = amax / 127, codes round(x / d) (half away from zero), value = code · fp16(d).
- Q4_0: m = the element of largest magnitude (its sign kept), d = m / -8, codes
  trunc(x / d + 8.5) clipped to 0..15 and stored minus 8, value = (code - 8) · fp16(d): the
  block's largest element sits exactly on code -8, and the grid's lopsided end (+7 steps)
  faces the other sign.

`qdq` is llama.cpp's reference quantizer bit for bit (codes from the float32 d, values from
the stored fp16 d; tests hold it equal to the `gguf` package's port of ggml-quants.c), so RTN
into these formats is what `llama-quantize` writes. `fit`/`apply` round onto one block's
fixed grid for GPTQ. `encode` reads the codes and scales back off values that sit on the grid
and returns the block bytes llama.cpp stores, never re-rounding: a value off the grid is an
error."""

from __future__ import annotations

import torch

from frugal.formats.base import NumberFormat

BLOCK = 32
Q4_0_BYTES, Q8_0_BYTES = 2 + BLOCK // 2, 2 + BLOCK


class NotOnGridError(ValueError):
    """Values that no (fp16 scale, codes) of the block format reproduce exactly."""


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """(n, 32) blocks along the last axis; a row that does not fill its last block is padded
    with zeros (which change no block's scale). GGUF files need whole blocks: `encode`."""
    rows = x.reshape(-1, x.shape[-1]) if x.dim() else x.reshape(1, 1)
    pad = -rows.shape[1] % BLOCK
    if pad:
        rows = torch.nn.functional.pad(rows, (0, pad))
    return rows.reshape(-1, BLOCK)


def _unblock(q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1] if x.dim() else 1
    return q.reshape(-1, q.numel() // max(1, x.numel() // n))[:, :n].reshape(x.shape)


def _fp16(d: torch.Tensor) -> torch.Tensor:
    return d.to(torch.float16).float()


def _roundf(y: torch.Tensor) -> torch.Tensor:
    """C's roundf (half away from zero), as ggml's reference computes it."""
    a = y.abs()
    floored = torch.floor(a)
    return torch.sign(y) * (floored + torch.floor(2 * (a - floored)))


def _inverse(d: torch.Tensor) -> torch.Tensor:
    """1 / d, and 0 where d is 0 or so small (float32 subnormal) that 1 / d overflows: its
    fp16 scale is 0 then, so every value of the block is 0 whatever its code."""
    inv = 1 / torch.where(d == 0, 1.0, d)
    return torch.where((d == 0) | ~torch.isfinite(inv), torch.zeros_like(d), inv)


class _GGUFBlockFormat(NumberFormat):
    lo: int
    hi: int
    ggml_type: int
    code_bits: int

    @property
    def bits_per_element(self) -> float:
        return self.code_bits + 16 / BLOCK  # the fp16 scale shared by 32

    def qdq(self, x: torch.Tensor):
        """llama.cpp's reference quantizer (nothing saturates: each block's scale comes from
        its own largest element)."""
        g = _blocks(x)
        return _unblock(self.apply(g, self.fit(g)), x), None

    def column_group(self, n_cols: int) -> int:
        return BLOCK

    def _scale_bytes(self, d: torch.Tensor) -> torch.Tensor:
        return d.to(torch.float16).view(torch.uint8).reshape(-1, 2)

    def apply(self, w: torch.Tensor, params) -> torch.Tensor:
        """Round [rows, k] `w` by llama.cpp's rule with the fitted float32 d of each row,
        onto the stored grid code · fp16(d)."""
        return self._codes(w, params) * _fp16(params)

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        """The block bytes (uint8, rows × blocks·bytes) of values already on the grid."""
        rows = w.detach().float().reshape(-1, w.shape[-1]) if w.dim() else w.reshape(1, 1)
        if rows.shape[1] % BLOCK:
            raise ValueError(
                f"GGUF stores whole blocks of {BLOCK}: a last axis of {rows.shape[1]} does not fit"
            )
        d, codes = self._solve(_blocks(rows))
        return self._pack(d, codes).reshape(rows.shape[0], -1)

    def _solve(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per block an fp16 d and integer codes in [lo, hi] with code · d == value exactly:
        the format's own fit first, then the largest-magnitude value over each code."""
        if not bool(torch.isfinite(g).all()):
            raise NotOnGridError(f"{self.name}: NaN or inf values have no codes")
        idx = g.abs().argmax(-1, keepdim=True)
        top = torch.gather(g, -1, idx)[:, 0]
        d = torch.zeros(len(g))
        codes = torch.zeros(g.shape, dtype=torch.int64)
        todo = top != 0  # an all-zero block: d = 0, codes 0
        candidates = [_fp16(self.fit(g)[:, 0])]
        candidates += [top / k for k in range(self.lo, self.hi + 1) if k != 0]
        for cand in candidates:
            if not bool(todo.any()):
                break
            rows = torch.nonzero(todo)[:, 0]
            s = cand[rows]
            ok = torch.isfinite(s) & (_fp16(s) == s) & (s != 0)
            q = torch.round(g[rows] * _inverse(torch.where(ok, s, 1.0))[:, None])
            ok &= ((q >= self.lo) & (q <= self.hi) & (q * s[:, None] == g[rows])).all(-1)
            d[rows[ok]], codes[rows[ok]] = s[ok], q[ok].long()
            todo[rows[ok]] = False
        if bool(todo.any()):
            raise NotOnGridError(f"{int(todo.sum())} block(s) are not on the {self.name} grid")
        return d, codes


class Q8_0Format(_GGUFBlockFormat):
    """GGUF Q8_0: int8 codes, one fp16 scale per 32 elements (8.5 bits per element)."""

    name = "q8_0"
    lo, hi, ggml_type, code_bits = -128, 127, 8, 8

    def fit(self, w: torch.Tensor) -> torch.Tensor:
        """Each row's float32 d = amax / 127 (stored as fp16)."""
        return w.abs().amax(-1, keepdim=True) / 127

    def _codes(self, w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return torch.clamp(_roundf(w * _inverse(d)), self.lo, self.hi)

    def _pack(self, d: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._scale_bytes(d), codes.to(torch.int8).view(torch.uint8)], -1)


class Q4_0Format(_GGUFBlockFormat):
    """GGUF Q4_0: 4-bit codes, one signed fp16 scale per 32 elements (4.5 bits per element)."""

    name = "q4_0"
    lo, hi, ggml_type, code_bits = -8, 7, 2, 4

    def _signed_max(self, g: torch.Tensor) -> torch.Tensor:
        return torch.gather(g, -1, g.abs().argmax(-1, keepdim=True))  # first of equals

    def fit(self, w: torch.Tensor) -> torch.Tensor:
        """Each row's float32 d = (its largest-magnitude element) / -8 (stored as fp16)."""
        return self._signed_max(w) / -8

    def _codes(self, w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.trunc(w * _inverse(d) + 8.5), 0, 15) - 8

    def _pack(self, d: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        nib = (codes + 8).to(torch.uint8)
        packed = nib[:, : BLOCK // 2] | (nib[:, BLOCK // 2 :] << 4)
        return torch.cat([self._scale_bytes(d), packed], -1)


# ggml type id -> the format that encodes it
ENCODERS = {Q4_0Format.ggml_type: Q4_0Format(), Q8_0Format.ggml_type: Q8_0Format()}

__all__ = ["BLOCK", "ENCODERS", "NotOnGridError", "Q4_0Format", "Q8_0Format"]
