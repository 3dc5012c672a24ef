"""Integer formats intN (N = 2..8): symmetric or asymmetric, per tensor, per channel (rows,
i.e. output channels of a weight) or per group of G consecutive elements along the last axis.
Scales are stored in fp16 (counted in the bits) and applied exactly as stored."""

from __future__ import annotations

import numpy as np
import torch

from frugal.formats import fastpath, kernels
from frugal.formats.base import NumberFormat, move_axis_to_blocks, undo_blocks

SCALE_BITS = 16  # fp16 scale (and, when asymmetric, an N-bit zero point) per group


def _fp16_scale(s: torch.Tensor) -> torch.Tensor:
    """Round scales to fp16 as they would be stored; never to zero or inf."""
    tiny = torch.finfo(torch.float16).tiny
    return torch.clamp(s, tiny, 65504.0).to(torch.float16).float()


class IntFormat(NumberFormat):
    """intN with `granularity` "tensor", "channel" or "group" (size `group`)."""

    def __init__(
        self, bits: int, granularity: str = "tensor", group: int = 128, symmetric: bool = True
    ):
        if not 2 <= bits <= 8:
            raise ValueError(f"integer formats need 2..8 bits, not {bits}")
        if granularity not in ("tensor", "channel", "group"):
            raise ValueError(f"unknown granularity {granularity!r}")
        if granularity == "group" and group < 1:
            raise ValueError("group size must be >= 1")
        self.bits, self.granularity, self.group, self.symmetric = (
            bits,
            granularity,
            group,
            symmetric,
        )
        suffix = {"tensor": "", "channel": "_pc", "group": f"_g{group}"}[granularity]
        self.name = f"int{bits}{suffix}{'' if symmetric else '_asym'}"

    @property
    def bits_per_element(self) -> float:
        overhead = SCALE_BITS + (0 if self.symmetric else self.bits)
        return self.bits + (overhead / self.group if self.granularity == "group" else 0.0)

    def _groups(self, x: torch.Tensor):
        if self.granularity == "tensor" or x.dim() == 0:
            return x.reshape(1, -1), None
        if self.granularity == "channel":
            return (x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(1, -1)), None
        return move_axis_to_blocks(x, -1, self.group)[0], True

    def _fit_rows(self, g: torch.Tensor):
        """(scale, zero point or None) of each row of `g`."""
        if self.symmetric:
            qmax = 2 ** (self.bits - 1) - 1
            return _fp16_scale(g.abs().amax(-1, keepdim=True) / qmax), None
        qmax = 2**self.bits - 1
        lo = torch.clamp(g.amin(-1, keepdim=True), max=0)
        hi = torch.clamp(g.amax(-1, keepdim=True), min=0)
        scale = _fp16_scale((hi - lo) / qmax)
        return scale, torch.round(-lo / scale)

    def _round(self, g: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None):
        """Values of `g` on the grid of (scale, zero), and the saturation limit."""
        if self.symmetric:
            qmax = 2 ** (self.bits - 1) - 1
            q = torch.clamp(torch.round(g / scale), -qmax - 1, qmax) * scale
            return q, (qmax + 0.5) * scale
        qmax = 2**self.bits - 1
        return (torch.clamp(torch.round(g / scale) + zero, 0, qmax) - zero) * scale, None

    def column_group(self, n_cols: int) -> int:
        return min(self.group, n_cols) if self.granularity == "group" else n_cols

    def fit(self, w: torch.Tensor):
        return self._fit_rows(w.reshape(1, -1) if self.granularity == "tensor" else w)

    def apply(self, w: torch.Tensor, params) -> torch.Tensor:
        return self._round(w, *params)[0]

    def qdq(self, x: torch.Tensor):
        g, grouped = self._groups(x)
        q, limit = self._round(g, *self._fit_rows(g))
        if grouped:
            moved = tuple(x.shape)
            q = undo_blocks(q, moved, x.shape[-1], -1)
            if limit is not None:
                limit = undo_blocks(limit.expand_as(g), moved, x.shape[-1], -1)
        else:
            q = q.reshape(x.shape)
            if limit is not None:
                limit = limit.expand_as(g).reshape(x.shape)
        return q, limit

    def fused_qdq(self, x: torch.Tensor):
        if self.granularity == "tensor" or x.dim() == 0:
            return self._fused_tensor(x)
        if self.granularity == "group":
            row, block = x.shape[-1], self.group
        else:
            row = block = x.numel() // x.shape[0] if x.dim() > 1 else x.numel()
        qmax = 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1
        kernel = kernels.int_sym if self.symmetric else kernels.int_asym
        out, scales = fastpath.run_blocks(kernel, x, row, block, qmax)
        if not self.symmetric:
            return out, None
        return out, fastpath.BlockLimits((qmax + 0.5) * scales, row, block)

    def _fused_tensor(self, x: torch.Tensor):
        """Per-tensor: one pass for the range, one to round (the scale needs all of x)."""
        ends = torch.tensor([fastpath.min_max(x)])
        scale, zero = self._fit_rows(ends)
        s = np.float32(scale.item())
        if self.symmetric:
            qmax = 2 ** (self.bits - 1) - 1
            lim = float(np.float32((qmax + 0.5) * scale.item()))
            q = fastpath.run_elements(kernels.fixed, x, s, np.float32(-qmax - 1), np.float32(qmax))
            return q, lim
        qmax = 2**self.bits - 1
        q = fastpath.run_elements(
            kernels.fixed_zero, x, s, np.float32(zero.item()), np.float32(0), np.float32(qmax)
        )
        return q, None
