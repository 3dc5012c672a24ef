"""Encoder states of unequal length in one batch: rows of exact zeros are padding.

A sparsified encoder keeps a different number of frames per window. Its batch output is
(B, T_max, d) with the unused tail of each row set to exactly 0.0 — a value a layer-normed
frame never takes (the layer norm's bias would have to be zero and the normed input too) —
so the marker survives indexing, stacking and slicing without a side channel. The decoder
masks such frames out of cross-attention.
"""

from __future__ import annotations

import torch


def frame_mask(states: torch.Tensor) -> torch.Tensor | None:
    """(B, T) bool, True for frames to attend to; None when no row has padding (the common
    dense case, which then runs without a mask)."""
    pad = (states == 0).all(dim=-1)
    return ~pad if bool(pad.any()) else None


def lengths(states: torch.Tensor) -> list[int]:
    """Frames before each row's zero tail."""
    mask = frame_mask(states)
    if mask is None:
        return [states.shape[1]] * states.shape[0]
    return mask.sum(dim=1).tolist()


def trim(row: torch.Tensor) -> torch.Tensor:
    """One window's states (T, d) without its zero tail."""
    return row[: lengths(row[None])[0]]


def stack(rows: list[torch.Tensor]) -> torch.Tensor:
    """Windows' states (T_i, d) as one batch, shorter rows padded with zero frames."""
    rows = [trim(r) for r in rows]
    t = max(r.shape[0] for r in rows)
    if all(r.shape[0] == t for r in rows):
        return torch.stack(rows)
    out = rows[0].new_zeros(len(rows), t, rows[0].shape[-1])
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out
