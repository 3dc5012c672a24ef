"""faster-whisper's API on frugal's runtime: `WhisperModel(...).transcribe(audio, ...)` and
`BatchedInferencePipeline(model).transcribe(...)` return `(segments, info)` with `segments` a
lazy generator (decoding advances as it is consumed) of segments with faster-whisper's fields.
Switching is a change of import; frugal's own options (`sparsify`) are extra keywords, and an
option frugal does not implement raises a clear error when set to anything but its
faster-whisper default."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from frugal.data.audio import SAMPLE_RATE, load_audio
from frugal.data.vad import VadOptions, speech_chunks
from frugal.models.whisper import WhisperASR, load_whisper
from frugal.tasks.asr.longform import LongFormOptions
from frugal.tasks.asr.transcribe import DecodeOptions, Transcriber

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

# compute types: which frugal weights run (fp32, or int8 RTN per output channel with the
# encoder on the int8 kernel and the vocabulary screened in int8, as `frugal quantize -f
# int8_pc --vocab-format int8_pc` writes)
COMPUTE_TYPES = {
    "default": "float32",
    "auto": "float32",
    "float32": "float32",
    "int8": "int8",
    "int8_float32": "int8",
}

# options frugal does not implement: accepted at faster-whisper's default only
_FIXED = {
    "log_progress": False,
    "patience": 1,
    "length_penalty": 1,
    "repetition_penalty": 1,
    "no_repeat_ngram_size": 0,
    "prefix": None,
    "suppress_blank": True,
    "suppress_tokens": [-1],
    "prepend_punctuations": "\"'“¿([{-",
    "append_punctuations": "\"'.。,，!！?？:：”)]}、",
    "multilingual": False,
    "chunk_length": None,
    "clip_timestamps": "0",
    "hallucination_silence_threshold": None,
    "hotwords": None,
    "language_detection_threshold": 0.5,
    "language_detection_segments": 1,
}

# faster-whisper's VAD parameter names -> frugal's VadOptions
_VAD_NAMES = {
    "threshold": "threshold",
    "min_silence_duration_ms": "min_silence_ms",
    "speech_pad_ms": "speech_pad_ms",
    "max_speech_duration_s": "max_chunk_s",
}


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class Segment:
    """faster-whisper's segment: times in seconds, text with its leading space, tokens
    (timestamps included), the window's mean log-probability (nats/token), gzip compression
    ratio, `<|nospeech|>` probability, words (with `word_timestamps`) and temperature."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None
    temperature: float | None


@dataclass
class TranscriptionInfo:
    """Language (and its probability, 1.0 for English-only checkpoints or a given language),
    duration of the audio and of what was decoded after VAD (s), every option in effect."""

    language: str
    language_probability: float
    duration: float
    duration_after_vad: float
    all_language_probs: list[tuple[str, float]] | None
    transcription_options: dict = field(default_factory=dict)
    vad_options: dict | None = None


def _audio(audio: str | os.PathLike | BinaryIO | np.ndarray) -> np.ndarray:
    """16 kHz mono float32: a path or file object is decoded and resampled; an array is taken
    as 16 kHz samples already."""
    if isinstance(audio, np.ndarray):
        if audio.ndim != 1:
            raise ValueError(f"audio array must be 1-D 16 kHz samples, not shape {audio.shape}")
        return audio.astype(np.float32, copy=False)
    if hasattr(audio, "read"):
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=Path(getattr(audio, "name", "a")).suffix) as tmp:
            tmp.write(audio.read())
            tmp.flush()
            return load_audio(tmp.name)
    return load_audio(audio)


def _check_fixed(given: dict) -> None:
    for name, value in given.items():
        if name not in _FIXED:
            raise TypeError(f"transcribe() got an unexpected keyword argument {name!r}")
        if value != _FIXED[name]:
            raise ValueError(
                f"{name}={value!r} is not supported by frugal's runtime "
                f"(only faster-whisper's default, {_FIXED[name]!r})"
            )


def _vad_options(params: dict | VadOptions | None) -> VadOptions:
    if params is None:
        return VadOptions()
    if isinstance(params, VadOptions):
        return params
    params = dict(params) if isinstance(params, dict) else asdict(params)
    out = {}
    for name, value in params.items():
        if name in _VAD_NAMES:
            out[_VAD_NAMES[name]] = value
        elif name in ("min_speech_duration_ms", "neg_threshold") and value in (0, None):
            continue
        else:
            raise ValueError(f"VAD parameter {name!r} is not supported by frugal's VAD")
    if out.get("max_chunk_s") == float("inf"):
        out["max_chunk_s"] = 30.0
    return VadOptions(**out)


class WhisperModel:
    """A Whisper on frugal's runtime with faster-whisper's constructor.

    `model_size_or_path`: a packaged name (`frugal models`: tiny.en, base, small), a
    faster-whisper folder, a transformers folder (e.g. from `frugal quantize`) or a hub id.
    `compute_type`: "default"/"float32" or "int8" (int8 RTN at load, as faster-whisper
    quantizes at load). `cpu_threads` > 0 sets torch's thread count."""

    def __init__(
        self,
        model_size_or_path: str,
        device: str = "auto",
        device_index: int | list[int] = 0,
        compute_type: str = "default",
        cpu_threads: int = 0,
        num_workers: int = 1,
        download_root: str | None = None,
        local_files_only: bool = False,
    ):
        if device not in ("auto", "cpu"):
            raise ValueError(f"device {device!r}: frugal's WhisperModel runs on cpu")
        if compute_type not in COMPUTE_TYPES:
            known = ", ".join(COMPUTE_TYPES)
            raise ValueError(f"compute_type {compute_type!r} is not supported on cpu: use {known}")
        if num_workers != 1 or device_index not in (0, [0]) or download_root is not None:
            raise ValueError("num_workers, device_index and download_root keep their defaults")
        if cpu_threads < 0:
            raise ValueError("cpu_threads must be >= 0 (0: torch's default)")
        if cpu_threads:
            import torch

            torch.set_num_threads(cpu_threads)
        key = str(model_size_or_path)
        if local_files_only and "/" in key and not Path(key).exists():
            raise FileNotFoundError(f"{key}: not a local folder (local_files_only=True)")
        self.asr: WhisperASR = load_whisper(key)
        self.compute_type = COMPUTE_TYPES[compute_type]
        if self.compute_type == "int8" and "quantization" not in self.asr.source:
            from frugal.models.whisper import use_native_kernels
            from frugal.tasks.asr.quantize import quantize_whisper

            record = quantize_whisper(self.asr, "int8_pc", vocab_format="int8_pc")
            use_native_kernels(self.asr.model, record)

    @property
    def model(self) -> WhisperASR:
        return self.asr

    @property
    def supported_languages(self) -> list[str]:
        lang_to_id = self.asr.model.generation_config.lang_to_id
        return [k[2:-2] for k in lang_to_id] if lang_to_id else ["en"]

    def transcribe(
        self,
        audio: str | os.PathLike | BinaryIO | np.ndarray,
        language: str | None = None,
        task: str = "transcribe",
        beam_size: int = 5,
        best_of: int = 5,
        temperature: float | Sequence[float] = DEFAULT_TEMPERATURES,
        compression_ratio_threshold: float | None = 2.4,
        log_prob_threshold: float | None = -1.0,
        no_speech_threshold: float | None = 0.6,
        condition_on_previous_text: bool = True,
        prompt_reset_on_temperature: float = 0.5,
        initial_prompt: str | Iterable[int] | None = None,
        without_timestamps: bool = False,
        max_initial_timestamp: float = 1.0,
        word_timestamps: bool = False,
        vad_filter: bool = False,
        vad_parameters: dict | VadOptions | None = None,
        max_new_tokens: int | None = None,
        sparsify: str | None = None,
        **fixed,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Transcribe with faster-whisper's options and defaults (beam 5, temperature fallback,
        conditioned on the previous text, timestamps). Decoding happens as `segments` is
        iterated. Differences: a fallback temperature draws one sample (faster-whisper draws
        `best_of`; only its default is accepted); `without_timestamps=True` decodes fixed 30 s
        windows without temperature fallback. frugal's extra: `sparsify` ("layer=0,sparsity=0.05"
        or a JSON file: early attentive sparsification of the encoder)."""
        return self._transcribe(
            audio, "sequential", 8, locals() | {"fixed": fixed}, vad_filter=vad_filter
        )

    def _transcribe(
        self, audio, mode: str, batch_size: int, args: dict, vad_filter: bool
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        _check_fixed(args["fixed"])
        if args["best_of"] != 5:
            raise ValueError("best_of: frugal draws one sample per fallback temperature")
        samples = _audio(audio)
        temps = args["temperature"]
        temps = (float(temps),) if isinstance(temps, int | float) else tuple(temps)
        vad = _vad_options(args["vad_parameters"])
        if args["without_timestamps"]:
            mode = "chunks" if mode == "batched" else "windows"
            if args["initial_prompt"] is not None:
                raise ValueError("initial_prompt needs without_timestamps=False in frugal")
        lf = LongFormOptions(
            mode=mode,
            temperatures=temps,
            compression_ratio_threshold=args["compression_ratio_threshold"],
            logprob_threshold=args["log_prob_threshold"],
            no_speech_threshold=args["no_speech_threshold"],
            condition_on_previous_text=args["condition_on_previous_text"],
            vad_filter=vad_filter and mode in ("sequential", "windows"),
            word_timestamps=args["word_timestamps"],
            prompt_reset_on_temperature=args["prompt_reset_on_temperature"],
            max_initial_timestamp=args["max_initial_timestamp"],
            vad=vad,
        )
        encoder = None
        if args["sparsify"] is not None:
            from frugal.sparsify.whisper import SparsifyConfig, sparse_encoder

            encoder = sparse_encoder(SparsifyConfig.parse(args["sparsify"]))
        language, lang_prob, all_probs = args["language"], 1.0, None
        opts = DecodeOptions(
            beam_size=args["beam_size"],
            language=language,
            task=args["task"],
            max_new_tokens=args["max_new_tokens"],
            batch_size=batch_size,
            timestamps=not args["without_timestamps"],
            long_form=lf,
        )
        tr = Transcriber(self.asr, opts, encoder)
        if not self.asr.multilingual:
            if language not in (None, "en"):
                raise ValueError(f"{self.asr.name} is English-only: language must be 'en'")
            language = "en"
        elif language is None:  # detected on the first 30 s, as faster-whisper does
            probs = tr.language_probs(samples)
            all_probs = list(probs.items())
            language, lang_prob = all_probs[0]
            opts.language = language
        else:
            self.asr.language_id(language)  # a clear error for an unknown language
        prompt = self._prompt_tokens(args["initial_prompt"])
        duration = len(samples) / SAMPLE_RATE
        after_vad = duration
        if mode in ("batched", "chunks") or vad_filter:
            after_vad = sum(b - a for a, b in speech_chunks(samples, vad)) / SAMPLE_RATE
        info = TranscriptionInfo(
            language=language,
            language_probability=lang_prob,
            duration=duration,
            duration_after_vad=after_vad,
            all_language_probs=all_probs,
            transcription_options={
                k: v for k, v in args.items() if k not in ("self", "audio", "fixed")
            },
            vad_options=vad.to_dict() if (vad_filter or mode in ("batched", "chunks")) else None,
        )
        if mode == "chunks":
            return self._chunk_segments(tr, samples), info
        if mode == "windows":
            return self._window_segments(tr, samples), info
        return self._segments(tr, samples, prompt), info

    def _prompt_tokens(self, initial_prompt: str | Iterable[int] | None) -> list[int]:
        if initial_prompt is None:
            return []
        if isinstance(initial_prompt, str):
            return self.asr.tokenizer.encode(" " + initial_prompt.strip())
        return [int(t) for t in initial_prompt]

    def _segment(self, i: int, seek: int, g, tokens: list[int]) -> Segment:
        eot = self.asr.token_ids["eot"]
        text = self.asr.tokenizer.decode([t for t in tokens if t < eot])
        words = None
        if g.words is not None:
            words = [Word(w.start, w.end, w.word, w.probability) for w in g.words]
        return Segment(
            id=i,
            seek=seek,
            start=g.start,
            end=g.end,
            text=text,
            tokens=list(tokens),
            avg_logprob=g.avg_logprob,
            compression_ratio=g.compression_ratio,
            no_speech_prob=g.no_speech_prob,
            words=words,
            temperature=g.temperature,
        )

    def _segments(
        self, tr: Transcriber, samples: np.ndarray, prompt: list[int]
    ) -> Iterator[Segment]:
        for i, (_, g) in enumerate(tr.iter_segments(samples, prompt), start=1):
            yield self._segment(i, g.seek, g, g.tokens)

    def _chunk_segments(self, tr: Transcriber, samples: np.ndarray) -> Iterator[Segment]:
        """One segment per VAD chunk, decoded once without timestamps (faster-whisper's batched
        pipeline); the chunk's scores are not computed on this path (NaN)."""
        nan, n = float("nan"), 0
        for g, _, _ in tr.iter_chunks(samples):
            if g is not None:
                g.avg_logprob = g.no_speech_prob = g.compression_ratio = nan
                n += 1
                yield self._segment(n, g.seek, g, g.tokens)

    def _window_segments(self, tr: Transcriber, samples: np.ndarray) -> Iterator[Segment]:
        """One segment per 30 s window decoded without timestamps; the window's scores are
        not computed on this path (NaN)."""
        from frugal.tasks.asr.longform import Segment as Span
        from frugal.tasks.asr.transcribe import WINDOW_S, split_windows

        windows, bs, n = split_windows(samples), tr.options.batch_size, 0
        duration = len(samples) / SAMPLE_RATE
        nan = float("nan")
        for first in range(0, len(windows), bs):
            batch = windows[first : first + bs]
            for k, toks in enumerate(tr.decode_windows(batch).tokens):  # [] when silent
                if not toks:
                    continue
                start = (first + k) * WINDOW_S
                span = Span(start, min(start + WINDOW_S, duration), "", avg_logprob=nan,
                            no_speech_prob=nan, compression_ratio=nan)  # fmt: skip
                n += 1
                yield self._segment(n, round(start * 100), span, toks)


class BatchedInferencePipeline:
    """faster-whisper's batched pipeline: speech chunks from the VAD decoded `batch_size` at a
    time (frugal's batched long-form), same return values as `WhisperModel.transcribe`."""

    def __init__(self, model: WhisperModel):
        self.model = model

    def transcribe(
        self,
        audio: str | os.PathLike | BinaryIO | np.ndarray,
        language: str | None = None,
        task: str = "transcribe",
        beam_size: int = 5,
        best_of: int = 5,
        temperature: float | Sequence[float] = DEFAULT_TEMPERATURES,
        compression_ratio_threshold: float | None = 2.4,
        log_prob_threshold: float | None = -1.0,
        no_speech_threshold: float | None = 0.6,
        condition_on_previous_text: bool = True,
        prompt_reset_on_temperature: float = 0.5,
        initial_prompt: str | Iterable[int] | None = None,
        without_timestamps: bool = True,
        max_initial_timestamp: float = 1.0,
        word_timestamps: bool = False,
        vad_filter: bool = True,
        vad_parameters: dict | VadOptions | None = None,
        max_new_tokens: int | None = None,
        batch_size: int = 8,
        sparsify: str | None = None,
        **fixed,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """faster-whisper's batched defaults: VAD chunks of at most 30 s decoded once each
        without timestamps at the first temperature, one segment per chunk (frugal's "chunks"
        mode). With `without_timestamps=False`, frugal's "batched" long-form instead: each
        chunk decoded with timestamps, seeking and temperature fallback. `vad_filter=False` is
        not supported (chunks come from the VAD)."""
        if not vad_filter:
            raise ValueError("frugal's batched pipeline decodes VAD chunks: vad_filter=True")
        args = locals() | {"fixed": fixed}
        return self.model._transcribe(audio, "batched", batch_size, args, vad_filter=True)


__all__ = ["BatchedInferencePipeline", "Segment", "TranscriptionInfo", "WhisperModel", "Word"]
