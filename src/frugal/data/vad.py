"""Voice activity detection: where a recording holds speech, cut into chunks of at most 30 s.

The detector is Silero VAD from the PyPI package `silero-vad` (MIT; its TorchScript model
ships inside the wheel, needs torch only — no torchaudio, no download). Chosen over
`webrtcvad-wheels` (a GMM on energy features: it marks noise as speech far more often) and
over the ONNX copy inside faster-whisper (needs onnxruntime; faster-whisper is only a
benchmark dependency here).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from frugal.data.audio import SAMPLE_RATE


@dataclass(frozen=True)
class VadOptions:
    """Silero's speech threshold (probability), the shortest pause that separates two
    speech spans (ms), the padding kept around each span (ms), the longest chunk (s)."""

    threshold: float = 0.5
    min_silence_ms: int = 160
    speech_pad_ms: int = 200
    max_chunk_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"VAD threshold must be in (0, 1), got {self.threshold}")
        if not 1.0 <= self.max_chunk_s <= 30.0:
            raise ValueError(
                f"max chunk must be 1..30 s (Whisper's window), got {self.max_chunk_s}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _silero():
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad  # its import sets torch to one thread
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "VAD needs the package silero-vad (pip install silero-vad)"
        ) from exc
    finally:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():  # its loader uses deprecated importlib / jit calls
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


def speech_spans(audio: np.ndarray, options: VadOptions | None = None) -> list[tuple[int, int]]:
    """Speech spans (start, end) in samples of 16 kHz mono audio; spans longer than the
    chunk limit are split at their longest inner pause (Silero's rule)."""
    opts = options or VadOptions()
    if len(audio) < 512:  # shorter than one VAD frame
        return []
    threads = torch.get_num_threads()
    try:
        model = _silero()
        from silero_vad import get_speech_timestamps

        torch.set_num_threads(1)  # tiny per-frame ops: thread wake-ups would cost more

        spans = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            model,
            threshold=opts.threshold,
            sampling_rate=SAMPLE_RATE,
            min_silence_duration_ms=opts.min_silence_ms,
            speech_pad_ms=opts.speech_pad_ms,
            max_speech_duration_s=opts.max_chunk_s - 2 * opts.speech_pad_ms / 1000,
        )
    finally:
        torch.set_num_threads(threads)
    return [(int(s["start"]), int(s["end"])) for s in spans]


def speech_chunks(audio: np.ndarray, options: VadOptions | None = None) -> list[tuple[int, int]]:
    """Contiguous stretches of audio (start, end in samples) that cover every speech span,
    each at most `max_chunk_s` long: consecutive spans are merged while they fit, so a chunk
    keeps the pauses inside it and its times map back to the recording by an offset.
    Speech-free audio gives no chunk."""
    opts = options or VadOptions()
    limit = int(opts.max_chunk_s * SAMPLE_RATE)
    chunks: list[tuple[int, int]] = []
    for start, end in speech_spans(audio, opts):
        end = min(end, start + limit)
        if chunks and end - chunks[-1][0] <= limit:
            chunks[-1] = (chunks[-1][0], end)
        else:
            chunks.append((start, end))
    return chunks
