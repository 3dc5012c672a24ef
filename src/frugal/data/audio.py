"""Read speech files as 16 kHz mono float32: soundfile for wav/flac/ogg, PyAV for the rest."""

from __future__ import annotations

import warnings
from math import gcd
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000  # Hz, what Whisper expects
PYAV_SUFFIXES = {".mp3", ".m4a", ".aac", ".mp4", ".webm", ".wma", ".opus", ".mkv"}


class AudioError(ValueError):
    """A file that cannot be used as speech: missing, unreadable, empty or not finite."""


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase (Kaiser-windowed FIR) resampling along the last axis; float32 out."""
    if orig_sr <= 0:
        raise AudioError(f"invalid sample rate {orig_sr}")
    if orig_sr == target_sr:
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly  # 1.3 s to import: only where audio needs it

    g = gcd(int(orig_sr), int(target_sr))
    out = resample_poly(audio, target_sr // g, orig_sr // g, axis=-1, window=("kaiser", 5.0))
    return out.astype(np.float32, copy=False)


def peak_dbfs(audio: np.ndarray) -> float:
    """Peak level in dB relative to full scale (1.0); -inf for empty or all-zero audio."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels of a (samples, channels) array; mono passes through."""
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return audio, int(sr)


def _read_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        streams = container.streams.audio
        if not streams:
            raise AudioError(f"{path}: no audio stream")
        stream = streams[0]
        sr = int(stream.rate or stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio.astype(np.float32, copy=False), sr


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to mono float32 at `sample_rate` Hz; AudioError names the file if not."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    readers = [_read_pyav, _read_soundfile]
    if path.suffix.lower() not in PYAV_SUFFIXES:
        readers.reverse()
    errors = []
    for reader in readers:
        try:
            audio, sr = reader(path)
            break
        except AudioError:
            raise
        except Exception as exc:  # each library raises its own types
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    else:
        raise AudioError(f"{path}: not a readable audio file ({errors[-1]})")
    audio = to_mono(np.asarray(audio, dtype=np.float32))
    if audio.size == 0:
        raise AudioError(f"{path}: contains no audio samples")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    audio = resample(audio, sr, sample_rate)
    if not np.any(audio):
        warnings.warn(f"{path}: audio is entirely silent", stacklevel=2)
    return audio
