"""NF4 (QLoRA's 4-bit NormalFloat): 16 levels at normal quantiles, scaled by each block's
absmax (fp16 scale), values rounded to the nearest level."""

from __future__ import annotations

import numpy as np
import torch

from frugal.formats import fastpath, kernels
from frugal.formats.base import NumberFormat, move_axis_to_blocks, undo_blocks
from frugal.formats.integer import _fp16_scale

# Dettmers et al. 2023, Appendix E: the NF4 code book.
NF4_LEVELS = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip


class NF4Format(NumberFormat):
    """NF4 with blocks of `block` elements along the last axis (default 64)."""

    def __init__(self, block: int = 64):
        self.block = block
        self.name = "nf4" if block == 64 else f"nf4_b{block}"

    @property
    def bits_per_element(self) -> float:
        return 4 + 16 / self.block

    def column_group(self, n_cols: int) -> int:
        return min(self.block, n_cols)

    def fit(self, w: torch.Tensor) -> torch.Tensor:
        return _fp16_scale(w.abs().amax(-1, keepdim=True))

    def apply(self, w: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        levels = torch.tensor(NF4_LEVELS, device=w.device)
        mids = (levels[1:] + levels[:-1]) / 2
        return levels[torch.bucketize(w / params, mids)] * params

    def qdq(self, x: torch.Tensor):
        blocks, moved, n = move_axis_to_blocks(x, -1, self.block)
        return undo_blocks(self.apply(blocks, self.fit(blocks)), moved, n, -1), None

    def fused_qdq(self, x: torch.Tensor):
        if x.dim() == 0:
            return None
        out, _ = fastpath.run_blocks(kernels.nf4, x, x.shape[-1], self.block, *_LEVELS_MIDS)
        return out, None


def _levels_and_midpoints() -> tuple[np.ndarray, np.ndarray]:
    """NF4's levels and the midpoints between them, in float32 as `apply` computes them."""
    levels = torch.tensor(NF4_LEVELS)
    return levels.numpy(), ((levels[1:] + levels[:-1]) / 2).numpy()


_LEVELS_MIDS = _levels_and_midpoints()
