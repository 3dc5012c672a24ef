"""frugal: make transformer models cheaper to run while keeping their accuracy, measured."""

from __future__ import annotations

__version__ = "0.1.0"

from frugal import data as datasets
from frugal.models import load_whisper as load
from frugal.tasks.asr import DecodeOptions, evaluate, transcribe

__all__ = ["DecodeOptions", "__version__", "datasets", "evaluate", "load", "transcribe"]
