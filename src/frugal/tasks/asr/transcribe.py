"""Transcription with Whisper: features, encoder, then the lean greedy decoder or generate().

Audio longer than Whisper's 30 s window is cut into consecutive 30 s windows whose texts are
joined. Timings are wall-clock milliseconds per batch, split into features, encoder, decoder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from frugal.data.audio import SAMPLE_RATE
from frugal.models.whisper import WhisperASR
from frugal.tasks.asr.lean_decoder import LeanDecoder

WINDOW_S = 30.0  # Whisper's input window, seconds


@dataclass
class DecodeOptions:
    """How to decode. `method`: "lean" (our greedy loop) or "generate" (transformers);
    beams > 1 always go through generate(). `language` None detects it (multilingual)."""

    method: str = "lean"
    beam_size: int = 1
    language: str | None = "en"
    task: str = "transcribe"
    max_new_tokens: int | None = None
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.method not in ("lean", "generate"):
            raise ValueError(f"unknown decoding method {self.method!r} (lean or generate)")
        if self.beam_size < 1 or self.batch_size < 1:
            raise ValueError("beam_size and batch_size must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Transcript:
    """Text and tokens of one recording, with the time spent on it (ms)."""

    text: str
    tokens: list[int]
    duration_s: float
    windows: int = 1
    language: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    segments: list[tuple[float, float, str]] = field(default_factory=list)  # (start s, end s, text)


@dataclass
class WindowBatch:
    """Decoded batch of ≤30 s windows: tokens, language and prompt per window, the batch's
    timings (ms) and the encoder output (kept for scoring, e.g. token NLL)."""

    tokens: list[list[int]]
    languages: list[str | None]
    prompts: list[list[int]]
    timings_ms: dict[str, float]
    encoder_out: torch.Tensor


def split_windows(audio: np.ndarray, window_s: float = WINDOW_S) -> list[np.ndarray]:
    """Consecutive windows of at most `window_s` seconds (the last one may be shorter)."""
    n = int(window_s * SAMPLE_RATE)
    if len(audio) <= n:
        return [audio]
    return [audio[i : i + n] for i in range(0, len(audio), n)]


def _now() -> float:
    return time.perf_counter()


# A function from (asr, features (B, mels, 3000)) to encoder states (B, T, d); sparsification
# and quantization swap in their own.
EncoderFn = Callable[[WhisperASR, torch.Tensor], torch.Tensor]


def dense_encoder(asr: WhisperASR, features: torch.Tensor) -> torch.Tensor:
    """transformers' Whisper encoder, unchanged."""
    return asr.model.model.encoder(features).last_hidden_state


class Transcriber:
    """Runs one Whisper over batches of audio; keeps a lean decoder built from its weights."""

    def __init__(
        self,
        asr: WhisperASR,
        options: DecodeOptions | None = None,
        encoder: EncoderFn | None = None,
    ):
        self.asr = asr
        self.options = options or DecodeOptions()
        self.encoder = encoder or dense_encoder
        self._lean: LeanDecoder | None = None
        self._lean_key: tuple | None = None

    def lean_decoder(self) -> LeanDecoder:
        """The lean decoder, rebuilt when any decoder weight has changed since last time."""
        modules = [*self.asr.model.model.decoder.modules(), self.asr.model.proj_out]
        key = tuple(
            (p.data_ptr(), p._version, str(getattr(m, "formats", "")))
            for m in modules
            for p in m.parameters(recurse=False)
        )
        if self._lean is None or key != self._lean_key:
            self._lean = LeanDecoder(self.asr.model)
            self._lean_key = key
        return self._lean

    def features(self, windows: Sequence[np.ndarray]) -> torch.Tensor:
        """Log-mel features, padded to 30 s: (B, mels, 3000)."""
        fe = self.asr.feature_extractor
        feats = fe(list(windows), sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        return feats.to(dtype=next(self.asr.model.parameters()).dtype)

    @torch.inference_mode()
    def _detect_language(self, lean: LeanDecoder, enc: torch.Tensor) -> list[str]:
        lang_to_id = self.asr.model.generation_config.lang_to_id
        names, ids = zip(*lang_to_id.items(), strict=True)
        logits = lean.prompt_logits(enc, [self.asr.token_ids["sot"]])[:, list(ids)]
        return [names[i][2:-2] for i in logits.argmax(-1).tolist()]

    @torch.inference_mode()
    def decode_windows(self, windows: Sequence[np.ndarray]) -> WindowBatch:
        """Tokens (without prompt/end) and language of each window, with the batch's timings."""
        opts, asr = self.options, self.asr
        t0 = _now()
        feats = self.features(windows)
        t1 = _now()
        enc = self.encoder(asr, feats)
        t2 = _now()
        languages: list[str | None]
        if not asr.multilingual:
            languages = [None] * len(windows)
        elif opts.language is None:
            languages = self._detect_language(self.lean_decoder(), enc)
        else:
            languages = [opts.language] * len(windows)
        prompts = [asr.prompt_ids(lang, opts.task) for lang in languages]
        if opts.method == "lean" and opts.beam_size == 1:
            lean = self.lean_decoder()
            tokens: list[list[int]] = [[] for _ in windows]
            # one prompt shape per call; languages may differ within a batch
            for lang in dict.fromkeys(languages):
                idx = [i for i, x in enumerate(languages) if x == lang]
                out = lean.greedy(enc[idx], [prompts[i] for i in idx], opts.max_new_tokens)
                for i, toks in zip(idx, out, strict=True):
                    tokens[i] = toks
        else:
            tokens = self._generate(enc, prompts)
        t3 = _now()
        timing = {
            "features_ms": 1e3 * (t1 - t0),
            "encoder_ms": 1e3 * (t2 - t1),
            "decoder_ms": 1e3 * (t3 - t2),
            "total_ms": 1e3 * (t3 - t0),
        }
        return WindowBatch(tokens, languages, prompts, timing, enc)

    def _generate(self, enc: torch.Tensor, prompts: list[list[int]]) -> list[list[int]]:
        from transformers.modeling_outputs import BaseModelOutput

        opts, asr = self.options, self.asr
        eot = asr.token_ids["eot"]
        out = []
        for prompt in dict.fromkeys(map(tuple, prompts)):
            idx = [i for i, p in enumerate(prompts) if tuple(p) == prompt]
            kwargs = {}
            if opts.max_new_tokens is not None:
                kwargs["max_new_tokens"] = opts.max_new_tokens
            seqs = asr.model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=enc[idx]),
                decoder_input_ids=torch.tensor([list(prompt)] * len(idx)),
                num_beams=opts.beam_size,
                do_sample=False,
                **kwargs,
            )
            for i, row in zip(idx, seqs.tolist(), strict=True):
                if row[: len(prompt)] == list(prompt):
                    row = row[len(prompt) :]
                out.append((i, row[: row.index(eot)] if eot in row else row))
        return [t for _, t in sorted(out, key=lambda it: it[0])]

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        """Transcribe 16 kHz mono waveforms; long ones are split into 30 s windows."""
        windows, owner = [], []
        for i, audio in enumerate(audios):
            for w in split_windows(audio):
                windows.append(w)
                owner.append(i)
        results: list[tuple[list[int], str | None, dict]] = []
        bs = self.options.batch_size
        for start in range(0, len(windows), bs):
            batch = windows[start : start + bs]
            wb = self.decode_windows(batch)
            share = {k: v / len(batch) for k, v in wb.timings_ms.items()}
            results.extend(
                (toks, lang, share) for toks, lang in zip(wb.tokens, wb.languages, strict=True)
            )
        out = []
        for i, audio in enumerate(audios):
            parts = [r for r, o in zip(results, owner, strict=True) if o == i]
            tokens = [t for toks, _, _ in parts for t in toks]
            texts = [
                self.asr.tokenizer.decode(toks, skip_special_tokens=True).strip()
                for toks, _, _ in parts
            ]
            timings: dict[str, float] = {}
            for _, _, tm in parts:
                for k, v in tm.items():
                    timings[k] = timings.get(k, 0.0) + v
            out.append(
                Transcript(
                    text=" ".join(t for t in texts if t),
                    tokens=tokens,
                    duration_s=len(audio) / SAMPLE_RATE,
                    windows=len(parts),
                    language=parts[0][1],
                    timings_ms=timings,
                    segments=[
                        (k * WINDOW_S, min((k + 1) * WINDOW_S, len(audio) / SAMPLE_RATE), text)
                        for k, text in enumerate(texts)
                    ],
                )
            )
        return out


def transcribe(
    asr: WhisperASR, audios: Sequence[np.ndarray], options: DecodeOptions | None = None
) -> list[Transcript]:
    """Transcribe waveforms (16 kHz mono float32) with one Whisper."""
    return Transcriber(asr, options).transcribe(audios)
