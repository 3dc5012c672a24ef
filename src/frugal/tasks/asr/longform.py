"""Long-form transcription: timestamped 30 s windows, seeking, temperature fallback,
no-speech detection; sequential over a recording, or batched over VAD chunks.

Every recording (sequential) or every speech chunk the VAD finds (batched) is a *stream* with
its own seek position in mel frames. Each round decodes the current window of every active
stream, in batches: a window is decoded with timestamps; its complete segments are kept and the
stream seeks to the end of the last complete one (OpenAI's reference algorithm). A window whose
text loops (gzip compression ratio above the threshold) or is improbable (mean log-probability
below the threshold) is decoded again at the next temperature, unless `<|nospeech|>` is likely
— then the window is silence and is skipped. Batched streams are independent, so all chunks of
a recording are decoded together, and seeking inside a chunk still recovers text that a single
pass would lose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from frugal.data.audio import SAMPLE_RATE
from frugal.data.vad import VadOptions, speech_chunks
from frugal.tasks.asr import states
from frugal.tasks.asr.alignment import Word
from frugal.tasks.asr.guard import LoopGuard
from frugal.tasks.asr.timestamps import (
    FRAMES_PER_SECOND,
    WINDOW_FRAMES,
    TimestampRules,
    split_segments,
)

HOP = SAMPLE_RATE // FRAMES_PER_SECOND  # samples per mel frame (160)
MODES = ("sequential", "batched", "chunks", "windows")


@dataclass
class LongFormOptions:
    """How audio is transcribed with timestamps. `mode`: "sequential" (seek through the whole
    recording), "batched" (VAD chunks decoded in batches, with timestamps, seeking and
    fallback inside each), "chunks" (VAD chunks of at most 30 s, each decoded once without
    timestamps at the first temperature, in batches: faster-whisper's batched pipeline; one
    segment per chunk, timed by the VAD) or "windows" (fixed 30 s windows without
    timestamps; the old behaviour, kept for comparison). Thresholds as in Whisper:
    gzip compression ratio, mean log-probability (nats/token), `<|nospeech|>` probability;
    None disables one. `sample_len`: most tokens decoded per window. `vad_filter`: in
    sequential mode, seek over stretches where the VAD finds no speech (off by default, as in
    the reference algorithm; batched mode always decodes VAD chunks only). `word_timestamps`:
    time every word (cross-attention alignment, `alignment`)."""

    mode: str = "sequential"
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = False
    vad_filter: bool = False
    word_timestamps: bool = False
    prompt_reset_on_temperature: float = 0.5
    max_initial_timestamp: float = 1.0
    sample_len: int = 224
    seed: int = 0
    vad: VadOptions = field(default_factory=VadOptions)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown long-form mode {self.mode!r}: use {', '.join(MODES)}")
        self.temperatures = tuple(float(t) for t in self.temperatures)
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ValueError("temperatures must be a non-empty list of values >= 0")
        if isinstance(self.vad, dict):
            self.vad = VadOptions(**self.vad)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LongFormOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown long-form option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass
class Segment:
    """A stretch of a recording: start/end in seconds from its beginning, text, tokens, and the
    window's decoding scores (mean log-probability in nats/token, `<|nospeech|>` probability,
    gzip compression ratio, the temperature that was kept)."""

    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    words: list[Word] | None = None
    seek: int = 0  # start of the window it was decoded in, mel frames (10 ms) from 0 s

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WindowResult:
    """One decoded window: tokens (timestamps included, no end-of-text) and its scores."""

    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


@dataclass
class Stream:
    """A stretch of one recording decoded window after window: `audio` starts `offset_s` into
    recording `owner`; `seek` is in mel frames from the stretch's start."""

    owner: int
    audio: np.ndarray
    offset_s: float = 0.0
    seek: int = 0
    language: str | None = None
    history: list[int] = field(default_factory=list)  # tokens since the last prompt reset
    segments: list[Segment] = field(default_factory=list)
    tried: list[WindowResult] = field(default_factory=list)  # this window, per temperature
    cached: tuple[int, torch.Tensor] | None = None  # (seek, encoder output) for a re-decode
    speech: list[tuple[int, int]] | None = None  # VAD spans in frames; None: all is speech
    windows: int = 0
    fallbacks: int = 0
    fallback_rules: dict[str, int] = field(default_factory=dict)  # which test sent it back
    skipped: int = 0  # windows judged silent
    dense: bool = False  # this window is encoded dense (the loop guard fired on it)
    guarded: int = 0  # windows the loop guard sent back to the dense encoder

    @property
    def frames(self) -> int:
        return len(self.audio) // HOP

    @property
    def done(self) -> bool:
        return self.seek >= self.frames

    def skip_to_speech(self) -> None:
        """Move `seek` to the next speech span (to the end when none is left)."""
        if self.speech is None:
            return
        later = [(a, b) for a, b in self.speech if b > self.seek]
        self.seek = self.frames if not later else max(self.seek, later[0][0])

    def window(self) -> np.ndarray:
        return self.audio[self.seek * HOP : (self.seek + WINDOW_FRAMES) * HOP]


# decode(streams, encoder outputs, prompts, sot indices, temperature) -> one result per stream
WindowDecoder = Callable[
    [Sequence[Stream], torch.Tensor, list[list[int]], list[int], float], list[WindowResult]
]


def needs_fallback(r: WindowResult, opts: LongFormOptions) -> bool:
    """Whisper's test: a loop or an improbable text, unless the window is likely silent."""
    bad = (
        opts.compression_ratio_threshold is not None
        and r.compression_ratio > opts.compression_ratio_threshold
    ) or (opts.logprob_threshold is not None and r.avg_logprob < opts.logprob_threshold)
    return bad and not is_silent(r, opts)


def fallback_rule(r: WindowResult, opts: LongFormOptions) -> str:
    """Which of Whisper's tests a result fails: "compression" (its text loops), "logprob"
    (it is improbable), "both", or "" (none)."""
    loops = (
        opts.compression_ratio_threshold is not None
        and r.compression_ratio > opts.compression_ratio_threshold
    )
    improbable = opts.logprob_threshold is not None and r.avg_logprob < opts.logprob_threshold
    return {(True, True): "both", (True, False): "compression", (False, True): "logprob"}.get(
        (loops, improbable), ""
    )


def is_silent(r: WindowResult, opts: LongFormOptions) -> bool:
    """`<|nospeech|>` above its threshold and a text below the log-probability threshold."""
    return (
        opts.no_speech_threshold is not None
        and r.no_speech_prob > opts.no_speech_threshold
        and (opts.logprob_threshold is None or r.avg_logprob < opts.logprob_threshold)
    )


def _best(tried: list[WindowResult], opts: LongFormOptions) -> WindowResult:
    """When every temperature failed: the most probable result that does not loop."""
    limit = opts.compression_ratio_threshold
    ok = [r for r in tried if limit is None or r.compression_ratio <= limit] or tried
    return max(ok, key=lambda r: r.avg_logprob)


def streams_for(
    audios: Sequence[np.ndarray], opts: LongFormOptions, owners: Sequence[int] | None = None
) -> list[Stream]:
    """One stream per recording (sequential), or one per VAD chunk (batched)."""
    owners = list(range(len(audios))) if owners is None else list(owners)
    out = []
    for i, audio in zip(owners, audios, strict=True):
        if opts.mode == "batched":
            for a, b in speech_chunks(audio, opts.vad):
                out.append(Stream(i, audio[a:b], offset_s=a / SAMPLE_RATE))
        elif opts.vad_filter:
            spans = [(a // HOP, -(-b // HOP)) for a, b in speech_chunks(audio, opts.vad)]
            out.append(Stream(i, audio, speech=spans))
        else:
            out.append(Stream(i, audio))
    return out


class LongFormRunner:
    """Drives streams to their end. The Transcriber supplies features, the encoder, the
    prompt and the window decoder; this object owns only the seeking and fallback logic."""

    def __init__(
        self,
        opts: LongFormOptions,
        rules: TimestampRules,
        is_silent: Callable[[np.ndarray], bool],
        features: Callable[[list[np.ndarray]], torch.Tensor],
        encode: Callable[[torch.Tensor], torch.Tensor],
        prompt: Callable[[Stream, torch.Tensor], tuple[list[int], int]],
        decode: WindowDecoder,
        decode_text: Callable[[list[int]], str],
        batch_size: int,
        align: Callable[[Stream, torch.Tensor, list[Segment], int, float], None] | None = None,
        guard: LoopGuard | None = None,
        encode_dense: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.opts, self.rules, self.is_silent = opts, rules, is_silent
        self.features, self.encode, self.prompt = features, encode, prompt
        self.decode, self.decode_text = decode, decode_text
        self.batch_size = batch_size
        self.align = align
        if guard is not None and encode_dense is None:
            raise ValueError("a loop guard needs the dense encoder to fall back on")
        self.guard, self.encode_dense = guard, encode_dense
        self.timings_ms: dict[int, dict[str, float]] = {}

    def run(self, streams: list[Stream], progress: Callable[[Stream, int], None] | None = None):
        """Decode until every stream is done; `progress(stream, frames advanced)`."""
        for _ in self.rounds(streams, progress):
            pass

    def rounds(
        self, streams: list[Stream], progress: Callable[[Stream, int], None] | None = None
    ) -> Iterator[None]:
        """`run`, one batch of windows per step: decoding advances only as far as the caller
        iterates (segments accepted so far sit in each stream's `segments`)."""
        while True:
            for s in streams:
                if not s.tried:
                    before = s.seek
                    s.skip_to_speech()
                    if progress is not None and s.seek > before:
                        progress(s, min(s.seek, s.frames) - before)
            active = [s for s in streams if not s.done]
            if not active:
                return
            # one batch at a time, refilled from every pending window: the lowest temperature
            # first (a batch shares one), then streams with the fewest windows decoded, so a
            # chunk's remainder window joins the next fresh chunks instead of a batch of its own
            level = min(len(s.tried) for s in active)
            pending = sorted((s for s in active if len(s.tried) == level), key=lambda s: s.windows)
            batch = pending[: self.batch_size]
            before = [s.seek for s in batch]
            with torch.inference_mode():  # per round: a suspended generator must not hold it
                self._round(batch, self.opts.temperatures[level])
            if progress is not None:
                for s, seek in zip(batch, before, strict=True):
                    if s.seek > seek:
                        progress(s, min(s.seek, s.frames) - seek)
            yield

    def _round(self, batch: list[Stream], temperature: float) -> None:
        quiet = [s for s in batch if not s.tried and self.is_silent(s.window())]
        for s in quiet:  # no signal: skipped without decoding
            s.windows += 1
            s.skipped += 1
            s.seek += min(WINDOW_FRAMES, s.frames - s.seek)
        batch = [s for s in batch if s not in quiet]
        if not batch:
            return
        t0 = time.perf_counter()
        fresh = [s for s in batch if s.cached is None or s.cached[0] != s.seek]
        feats_ms = enc_ms = 0.0
        if fresh:
            feats = self.features([s.window() for s in fresh])
            t1 = time.perf_counter()
            for dense in (False, True):  # windows the guard sent back are encoded dense
                idx = [i for i, s in enumerate(fresh) if s.dense == dense]
                if idx:
                    some = feats if len(idx) == len(fresh) else feats[idx]
                    enc = (self.encode_dense if dense else self.encode)(some)
                    for i, row in zip(idx, enc, strict=True):
                        fresh[i].cached = (fresh[i].seek, row)
            t2 = time.perf_counter()
            feats_ms, enc_ms = 1e3 * (t1 - t0), 1e3 * (t2 - t1)
        t2 = time.perf_counter()
        enc_out = states.stack([s.cached[1] for s in batch])
        made = [self.prompt(s, enc_out[i : i + 1]) for i, s in enumerate(batch)]
        prompts, sots = [p for p, _ in made], [k for _, k in made]
        results: list[WindowResult | None] = [None] * len(batch)
        for n in sorted({len(p) for p in prompts}):  # equal prompt lengths decode together
            idx = [i for i, p in enumerate(prompts) if len(p) == n]
            out = self.decode(
                [batch[i] for i in idx],
                enc_out[idx],
                [prompts[i] for i in idx],
                [sots[i] for i in idx],
                temperature,
            )
            for i, r in zip(idx, out, strict=True):
                results[i] = r
        t3 = time.perf_counter()
        share = {
            "features_ms": feats_ms / len(batch),
            "encoder_ms": enc_ms / len(batch),
            "decoder_ms": 1e3 * (t3 - t2) / len(batch),
        }
        for s, r in zip(batch, results, strict=True):
            tm = self.timings_ms.setdefault(s.owner, {})
            for k, v in share.items():
                tm[k] = tm.get(k, 0.0) + v
            if self._guard_fires(s, r):  # decoded again at this temperature, dense
                s.dense, s.cached = True, None
                s.guarded += 1
                continue
            s.tried.append(r)
            if needs_fallback(r, self.opts) and len(s.tried) < len(self.opts.temperatures):
                s.fallbacks += 1
                rule = fallback_rule(r, self.opts)
                s.fallback_rules[rule] = s.fallback_rules.get(rule, 0) + 1
                continue
            self._accept(s, r if not needs_fallback(r, self.opts) else _best(s.tried, self.opts))

    def _guard_fires(self, s: Stream, r: WindowResult) -> bool:
        """An approximate encoder's window that loops or collapses (and is not silence)."""
        return (
            self.guard is not None
            and not s.dense
            and self.guard.fires(r.text, r.avg_logprob)
            and not is_silent(r, self.opts)
        )

    def _accept(self, s: Stream, r: WindowResult) -> None:
        """Keep a window's complete segments and seek past them."""
        window_frames = min(WINDOW_FRAMES, s.frames - s.seek)
        enc = states.trim(s.cached[1]) if s.cached is not None else None
        s.tried, s.cached, s.dense = [], None, False
        s.windows += 1
        if is_silent(r, self.opts):
            s.skipped += 1
            s.seek += window_frames
            return
        raw, advance = split_segments(r.tokens, self.rules.timestamp_begin, window_frames)
        start_s = s.offset_s + s.seek / FRAMES_PER_SECOND
        end_limit = s.offset_s + s.frames / FRAMES_PER_SECOND
        kept: list[Segment] = []
        for seg in raw:
            text_tokens = [t for t in seg.tokens if t < self.rules.eot]
            text = self.decode_text(text_tokens).strip()
            if not text:
                continue
            kept.append(
                Segment(
                    start=round(min(start_s + seg.start, end_limit), 3),
                    end=round(min(start_s + seg.end, end_limit), 3),
                    text=text,
                    tokens=seg.tokens,
                    avg_logprob=r.avg_logprob,
                    no_speech_prob=r.no_speech_prob,
                    compression_ratio=r.compression_ratio,
                    temperature=r.temperature,
                    seek=round(s.offset_s * FRAMES_PER_SECOND) + s.seek,
                )
            )
        if kept and self.opts.word_timestamps and self.align is not None and enc is not None:
            self.align(s, enc, kept, window_frames, start_s)
        s.segments.extend(kept)
        s.seek += advance if advance > 0 else window_frames
        if self.opts.condition_on_previous_text and r.temperature <= (
            self.opts.prompt_reset_on_temperature
        ):
            s.history.extend(r.tokens)
        else:
            s.history = []
