"""Checkpoint loading: packaged CTranslate2 Whisper, faster-whisper folders, transformers."""

from frugal.models.ct2_format import CT2FormatError, CT2Model, read_ct2_model
from frugal.models.registry import CHECKPOINTS, DEFAULT_MODEL, PackagedCheckpoint
from frugal.models.whisper import WhisperASR, load_whisper
from frugal.models.whisper_ct2 import load_ct2_whisper

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_MODEL",
    "CT2FormatError",
    "CT2Model",
    "PackagedCheckpoint",
    "WhisperASR",
    "load_ct2_whisper",
    "load_whisper",
    "read_ct2_model",
]
