"""frugal: make transformer models cheaper to run while keeping their accuracy, measured."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# imported on first use, so `import frugal.search` or `frugal.formats` stays light
_LAZY = {
    "datasets": ("frugal.data", None),
    "load": ("frugal.models", "load_whisper"),
    "DecodeOptions": ("frugal.tasks.asr", "DecodeOptions"),
    "evaluate": ("frugal.tasks.asr", "evaluate"),
    "transcribe": ("frugal.tasks.asr", "transcribe"),
    # faster-whisper's API on frugal's runtime
    "WhisperModel": ("frugal.tasks.asr.faster_whisper_api", "WhisperModel"),
    "BatchedInferencePipeline": ("frugal.tasks.asr.faster_whisper_api", "BatchedInferencePipeline"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'frugal' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


__all__ = [
    "BatchedInferencePipeline",
    "DecodeOptions",
    "WhisperModel",
    "__version__",
    "datasets",
    "evaluate",
    "load",
    "transcribe",
]
