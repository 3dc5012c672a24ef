"""Speech recognition with Whisper: transcription, lean decoding, WER/NLL/latency."""

from frugal.tasks.asr.evaluate import EvalResult, UtteranceResult, evaluate
from frugal.tasks.asr.lean_decoder import LeanDecoder
from frugal.tasks.asr.metrics import WERResult, normalize_text, token_nll, wer
from frugal.tasks.asr.transcribe import (
    DecodeOptions,
    Transcriber,
    Transcript,
    dense_encoder,
    split_windows,
    transcribe,
)

__all__ = [
    "DecodeOptions",
    "EvalResult",
    "LeanDecoder",
    "Transcriber",
    "Transcript",
    "UtteranceResult",
    "WERResult",
    "dense_encoder",
    "evaluate",
    "normalize_text",
    "split_windows",
    "token_nll",
    "transcribe",
    "wer",
]
