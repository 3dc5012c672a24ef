"""The loop guard: an approximate encoder's window is decoded again dense when its text loops
or collapses.

The signals are the ones Whisper's temperature fallback uses: a gzip compression ratio above
2.4 (the text repeats itself) or a mean log-probability below −1 nat per token (the decoder
is unsure of every token). A guarded window that trips either is re-encoded with the dense
encoder and decoded again at the same temperature; the count of such windows is reported, so
the guard cannot hide a bad setting.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def compression_ratio(text: str) -> float:
    """len(utf-8 bytes) / len(zlib-compressed bytes): above ~2.4 the text repeats itself."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


@dataclass(frozen=True)
class LoopGuard:
    """Thresholds: `compression_ratio` (loops), `logprob` (nats per token, collapse); None
    switches a signal off."""

    compression_ratio: float | None = 2.4
    logprob: float | None = -1.0

    def loops(self, text: str) -> bool:
        """The text repeats itself (cheap: no decoder pass needed)."""
        limit = self.compression_ratio
        return limit is not None and compression_ratio(text) > limit

    def fires(self, text: str, avg_logprob: float | None) -> bool:
        """The window's text loops, or its mean log-probability is below the threshold."""
        low = self.logprob is not None and avg_logprob is not None and avg_logprob < self.logprob
        return self.loops(text) or low
