"""Optional dependencies, imported where a feature needs them, with the install line when
they are missing (transformers: LMs, HF export, generate() as a reference decoder)."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"transformers": "hf", "gguf": "llm"}


def require(module: str, purpose: str) -> ModuleType:
    """`module` imported, or an ImportError naming `purpose` and the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top, top)
        raise ImportError(f"{purpose} needs {top}: pip install 'frugal[{extra}]'") from exc
