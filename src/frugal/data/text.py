"""English text available offline on every install, by name, for LM calibration and
evaluation in two distinct domains:

- `pydoc`: the topic help of the Python reference manual that every CPython ships
  (`pydoc_data.topics`, ~460 kB; technical prose with code), in a fixed order;
- `sentences`: the 175 everyday sentences written for frugal's built-in speech set (~3,700
  words; conversational English, no code), one per line in the set's order.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

TEXT_SOURCES = {
    "pydoc": "Python reference manual topics shipped with CPython (technical English)",
    "sentences": "the built-in speech set's 175 transcripts (everyday English)",
}


def text_corpus(name: str) -> str:
    """The text of a named source (see TEXT_SOURCES) or of a text file path."""
    if name == "pydoc":
        from pydoc_data.topics import topics

        return "\n\n".join(topics[k] for k in sorted(topics))
    if name == "sentences":
        manifest = Path(str(resources.files("frugal.data") / "builtin" / "manifest.jsonl"))
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        return "\n".join(r["text"] for r in rows)
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such text file (named sources: {', '.join(TEXT_SOURCES)})"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"{path}: empty text file")
    return text


__all__ = ["TEXT_SOURCES", "text_corpus"]
