"""Whisper's log-mel front end in torch: 25 ms Hann windows every 10 ms, a Slaney mel bank
up to 8 kHz, log10 clamped to 8 decades (80 dB) under each window's peak, scaled to about
[-1, 1]. The same operations as transformers' WhisperFeatureExtractor on torch, so the features
are the same to the bit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
CHUNK_S = 30


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(
        f < 1000.0, 3.0 * f / 200.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / log_step
    )


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp(log_step * (m - 15.0)))


def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """(1 + n_fft/2, n_mels) triangular filters on the Slaney mel scale from 0 to 8 kHz, each
    scaled to unit area (Slaney normalisation), float64."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(8000.0), n_mels + 2))
    widths = np.diff(edges)
    slopes = edges[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    bank = np.maximum(0.0, np.minimum(down, up))
    return bank * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[None, :]


class LogMel:
    """Callable: 16 kHz waveforms → (B, n_mels, 3000) float32 features of 30 s windows
    (shorter audio padded with zeros, longer cut)."""

    def __init__(self, n_mels: int = 80):
        self.feature_size = n_mels
        self.sampling_rate = SAMPLE_RATE
        self.n_samples = CHUNK_S * SAMPLE_RATE
        self.filters = torch.from_numpy(mel_filters(n_mels)).float()

    def __call__(self, audios: Sequence[np.ndarray]) -> torch.Tensor:
        batch = np.zeros((len(audios), self.n_samples), dtype=np.float32)
        for i, a in enumerate(audios):
            a = np.asarray(a, dtype=np.float32).reshape(-1)[: self.n_samples]
            batch[i, : len(a)] = a
        wave = torch.from_numpy(batch)
        stft = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
        power = (stft[..., :-1].abs() ** 2).contiguous()
        log_spec = torch.clamp(self.filters.T @ power, min=1e-10).log10()
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        return (log_spec + 4.0) / 4.0

    def to_dict(self) -> dict:
        """preprocessor_config.json as transformers and faster-whisper read it."""
        return {
            "feature_extractor_type": "WhisperFeatureExtractor",
            "feature_size": self.feature_size,
            "sampling_rate": SAMPLE_RATE,
            "hop_length": HOP,
            "n_fft": N_FFT,
            "chunk_length": CHUNK_S,
            "n_samples": self.n_samples,
            "nb_max_frames": self.n_samples // HOP,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": False,
        }

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
