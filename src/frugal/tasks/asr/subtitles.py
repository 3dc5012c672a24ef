"""Transcripts as SubRip (.srt) and WebVTT (.vtt) subtitles, and reading them back."""

from __future__ import annotations

import re
from collections.abc import Sequence

from frugal.tasks.asr.longform import Segment


def timestamp(seconds: float, marker: str = ",") -> str:
    """hh:mm:ss,mmm (SubRip) or hh:mm:ss.mmm (WebVTT, marker ".")."""
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{marker}{ms:03d}"


def to_srt(segments: Sequence[Segment]) -> str:
    cues = [
        f"{k}\n{timestamp(g.start)} --> {timestamp(g.end)}\n{g.text.strip()}\n"
        for k, g in enumerate(segments, 1)
    ]
    return "\n".join(cues)


def to_vtt(segments: Sequence[Segment]) -> str:
    cues = [
        f"{timestamp(g.start, '.')} --> {timestamp(g.end, '.')}\n{g.text.strip()}\n"
        for g in segments
    ]
    return "\n".join(["WEBVTT\n", *cues])


_CUE = re.compile(
    r"(\d+):(\d{2}):(\d{2})[,.](\d{3})\s+-->\s+(\d+):(\d{2}):(\d{2})[,.](\d{3})[^\n]*\n(.*?)(?:\n\s*\n|\s*$)",
    re.S,
)


def parse_subtitles(text: str) -> list[Segment]:
    """Cues of an .srt or .vtt text as segments (start and end in seconds, text)."""
    out = []
    for m in _CUE.finditer(text):
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(x) for x in m.groups()[:8])
        out.append(
            Segment(
                start=h1 * 3600 + m1 * 60 + s1 + ms1 / 1000,
                end=h2 * 3600 + m2 * 60 + s2 + ms2 / 1000,
                text=m.group(9).strip(),
            )
        )
    return out
