"""Encoder sparsification (early attentive frame dropping) for Whisper."""

from frugal.sparsify.whisper import (
    RULES,
    SCORES,
    SparsifyConfig,
    audio_frames,
    check_config,
    frame_scores,
    select_frames,
    sparse_encode,
    sparse_encoder,
)

__all__ = [
    "RULES",
    "SCORES",
    "SparsifyConfig",
    "audio_frames",
    "check_config",
    "frame_scores",
    "select_frames",
    "sparse_encode",
    "sparse_encoder",
]
