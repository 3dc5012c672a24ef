"""Encoder sparsification (early attentive frame dropping) for Whisper."""

from frugal.sparsify.whisper import (
    SCORES,
    SparsifyConfig,
    check_config,
    frame_scores,
    keep_indices,
    sparse_encode,
    sparse_encoder,
)

__all__ = [
    "SCORES",
    "SparsifyConfig",
    "check_config",
    "frame_scores",
    "keep_indices",
    "sparse_encode",
    "sparse_encoder",
]
