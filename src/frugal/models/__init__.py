"""Checkpoint loading: packaged CTranslate2 Whisper, faster-whisper folders, transformers.

Names are imported on first use, so listing what is installed (`CHECKPOINTS`) never loads
torch or transformers."""

from __future__ import annotations

import importlib

_LAZY = {
    "CHECKPOINTS": "frugal.models.registry",
    "DEFAULT_MODEL": "frugal.models.registry",
    "PackagedCheckpoint": "frugal.models.registry",
    "CT2FormatError": "frugal.models.ct2_format",
    "CT2Model": "frugal.models.ct2_format",
    "read_ct2_model": "frugal.models.ct2_format",
    "WhisperASR": "frugal.models.whisper",
    "load_whisper": "frugal.models.whisper",
    "load_ct2_whisper": "frugal.models.whisper_ct2",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'frugal.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
