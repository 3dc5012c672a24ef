"""Voice activity detection: where a recording holds speech, cut into chunks of at most 30 s.

The detector is Silero VAD from the PyPI package `silero-vad` (MIT; its weights ship inside
the wheel, it needs torch only — no torchaudio, no download). Its network runs here in plain
PyTorch over all frames at once (`SileroNet`): the package's TorchScript model is called once
per 32 ms frame from Python, 1.6 s for 4 minutes of audio on this CPU. Chosen over
`webrtcvad-wheels` (a GMM on energy features: it marks noise as speech far more often) and
over the ONNX copy inside faster-whisper (needs onnxruntime; faster-whisper is only a
benchmark dependency here).
"""

from __future__ import annotations

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


FRAME = 512  # samples per VAD frame (32 ms)
CONTEXT = 64  # samples of the previous frame each frame also sees


class SileroNet(torch.nn.Module):
    """Silero VAD (16 kHz) in plain PyTorch, with the weights of the package's default model.
    A frame's STFT magnitude and conv encoder depend on its own samples only, so
    they run for all frames at once; only the LSTM runs frame after frame (in C++, `nn.LSTM`).
    Gives the package's TorchScript model's probabilities (a test checks them)."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        self.stft = torch.nn.Conv1d(1, 258, 256, stride=128, bias=False)
        self.convs = torch.nn.ModuleList(
            [
                torch.nn.Conv1d(129, 128, 3, padding=1),
                torch.nn.Conv1d(128, 64, 3, stride=2, padding=1),
                torch.nn.Conv1d(64, 64, 3, stride=2, padding=1),
                torch.nn.Conv1d(64, 128, 3, padding=1),
            ]
        )
        self.lstm = torch.nn.LSTM(128, 128)
        self.out = torch.nn.Conv1d(128, 1, 1)
        self.stft.weight.data.copy_(state["stft_conv.weight"])
        for k, conv in enumerate(self.convs, 1):
            conv.weight.data.copy_(state[f"conv{k}.weight"])
            conv.bias.data.copy_(state[f"conv{k}.bias"])
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.lstm, f"{name}_l0").data.copy_(state[f"lstm_cell.{name}"])
        self.out.weight.data.copy_(state["final_conv.weight"])
        self.out.bias.data.copy_(state["final_conv.bias"])
        self.eval()

    @torch.inference_mode()
    def forward(self, audio: torch.Tensor, block: int = 4096) -> torch.Tensor:
        """Speech probability of each 512-sample frame of 16 kHz audio (1-D), (frames,).
        Frames go through in blocks of `block` (131 s), the LSTM state carried across, so
        memory stays bounded on hours of audio."""
        n = -(-audio.shape[0] // FRAME)
        x = torch.nn.functional.pad(audio, (CONTEXT, n * FRAME - audio.shape[0]))
        state, out = None, []
        for first in range(0, n, block):
            last = min(n, first + block)
            frames = x[first * FRAME : last * FRAME + CONTEXT].unfold(0, FRAME + CONTEXT, FRAME)
            frames = torch.nn.functional.pad(frames[:, None], (0, CONTEXT), mode="reflect")
            spec = self.stft(frames)  # context + frame, reflect-padded: 4 STFT steps
            h = (spec[:, :129] ** 2 + spec[:, 129:] ** 2).sqrt()
            for conv in self.convs:
                h = torch.relu(conv(h))
            states, state = self.lstm(h[:, :, 0][:, None], state)  # one sequence, frame by frame
            out.append(torch.sigmoid(self.out(torch.relu(states[:, 0, :, None])))[:, 0, 0])
        return torch.cat(out) if out else torch.zeros(0)


JIT_NAMES = {  # the package's TorchScript model (its default) → SileroNet's weight names
    "stft.forward_basis_buffer": "stft_conv.weight",
    **{
        f"encoder.{k}.reparam_conv.{p}": f"conv{k + 1}.{p}"
        for k in range(4)
        for p in ("weight", "bias")
    },
    **{
        f"decoder.rnn.{p}": f"lstm_cell.{p}"
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    },
    "decoder.decoder.2.weight": "final_conv.weight",
    "decoder.decoder.2.bias": "final_conv.bias",
}


@lru_cache(maxsize=1)
def silero_net() -> SileroNet:
    """The Silero network with the weights of the installed `silero-vad` package's default
    (TorchScript) model, read once."""
    import warnings

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "VAD needs the package silero-vad (pip install silero-vad)"
        ) from exc
    finally:
        torch.set_num_threads(threads)  # importing the package sets torch to one thread
    with warnings.catch_warnings():  # its loader uses deprecated importlib / jit calls
        warnings.simplefilter("ignore", DeprecationWarning)
        jit = load_silero_vad()
    state = {
        new: jit.state_dict()[f"_model.{old}"].detach().clone() for old, new in JIT_NAMES.items()
    }
    return SileroNet(state)


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """Silero's speech probability per 32 ms frame of 16 kHz mono audio."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return silero_net()(x).numpy()


def speech_spans(audio: np.ndarray, options: VadOptions | None = None) -> list[tuple[int, int]]:
    """Speech spans (start, end) in samples of 16 kHz mono audio; spans longer than the
    chunk limit are split at their longest inner pause (Silero's rules, applied by the
    package's own `get_speech_timestamps_from_probs`)."""
    opts = options or VadOptions()
    if len(audio) < FRAME:  # shorter than one VAD frame
        return []
    probs = speech_probabilities(audio).tolist()
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    spans = get_speech_timestamps_from_probs(
        probs,
        sampling_rate=SAMPLE_RATE,
        threshold=opts.threshold,
        min_silence_duration_ms=opts.min_silence_ms,
        speech_pad_ms=opts.speech_pad_ms,
        max_speech_duration_s=opts.max_chunk_s - 2 * opts.speech_pad_ms / 1000,
        audio_length_samples=len(audio),
    )
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
