"""Speech data: audio decoding and data sets."""

from frugal.data.audio import SAMPLE_RATE, AudioError, load_audio, resample
from frugal.data.datasets import (
    SpeechDataset,
    Utterance,
    audio_files,
    builtin_speech,
    librispeech,
    load_dataset,
    manifest,
)

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "SpeechDataset",
    "Utterance",
    "audio_files",
    "builtin_speech",
    "librispeech",
    "load_audio",
    "load_dataset",
    "manifest",
    "resample",
]
