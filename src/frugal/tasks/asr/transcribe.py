"""Transcription with Whisper: features, encoder, then the lean decoder or generate().

Audio of up to 30 s is one window decoded without timestamps (batched). Longer audio, or any
audio when timestamps are asked for, goes through long-form decoding (`longform`): timestamped
windows with seeking, temperature fallback and no-speech detection, over the whole recording
(sequential) or over VAD chunks (batched). Timings are wall-clock milliseconds, split into
features, encoder, decoder.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from frugal.data.audio import SAMPLE_RATE, peak_dbfs
from frugal.data.vad import speech_chunks
from frugal.models.whisper import WhisperASR
from frugal.tasks.asr import states
from frugal.tasks.asr.guard import LoopGuard, compression_ratio
from frugal.tasks.asr.lean_decoder import LeanDecoder
from frugal.tasks.asr.longform import (
    LongFormOptions,
    LongFormRunner,
    Segment,
    Stream,
    WindowResult,
    streams_for,
)
from frugal.tasks.asr.timestamps import TimestampRules

WINDOW_S = 30.0  # Whisper's input window, seconds


@dataclass
class DecodeOptions:
    """How to decode. `method`: "lean" (our decoder: greedy, sampling, beam search) or
    "generate" (transformers' generate(), a reference that needs transformers installed).
    `language` None detects it (multilingual). `timestamps`:
    decode every recording with timestamps (segments with real times), not only those over
    30 s; `long_form` says how. A window whose peak level is below `silence_db` (dBFS) holds
    no signal and is not decoded (Whisper hallucinates "you" on digital silence)."""

    method: str = "lean"
    beam_size: int = 1
    language: str | None = "en"
    task: str = "transcribe"
    max_new_tokens: int | None = None
    batch_size: int = 8
    timestamps: bool = False
    long_form: LongFormOptions = field(default_factory=LongFormOptions)
    silence_db: float | None = -60.0

    def __post_init__(self) -> None:
        if self.method not in ("lean", "generate"):
            raise ValueError(f"unknown decoding method {self.method!r} (lean or generate)")
        if self.beam_size < 1 or self.batch_size < 1:
            raise ValueError("beam_size and batch_size must be >= 1")
        if isinstance(self.long_form, dict):
            self.long_form = LongFormOptions.from_dict(self.long_form)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DecodeOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Transcript:
    """Text and tokens of one recording, with the time spent on it (ms). `decoding` says how:
    "short" (one window, no timestamps), "sequential", "batched", "chunks" or "windows";
    `fallbacks` counts windows decoded again at a higher temperature (`fallback_rules`: how
    many because the text looped, was improbable, or both), `skipped` windows judged
    silent, `guarded` windows of an approximate encoder decoded again dense by its loop
    guard."""

    text: str
    tokens: list[int]
    duration_s: float
    windows: int = 1
    language: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    decoding: str = "short"
    fallbacks: int = 0
    skipped: int = 0
    guarded: int = 0
    fallback_rules: dict[str, int] = field(default_factory=dict)


@dataclass
class WindowBatch:
    """Decoded batch of ≤30 s windows: tokens, language and prompt per window, the batch's
    timings (ms), the encoder output the tokens come from (kept for scoring, e.g. token NLL;
    rows of unequal length padded as `states` says) and which windows the loop guard
    decoded again dense."""

    tokens: list[list[int]]
    languages: list[str | None]
    prompts: list[list[int]]
    timings_ms: dict[str, float]
    encoder_out: torch.Tensor
    guarded: list[bool] = field(default_factory=list)


def _sum_counts(counts) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def split_windows(audio: np.ndarray, window_s: float = WINDOW_S) -> list[np.ndarray]:
    """Consecutive windows of at most `window_s` seconds (the last one may be shorter)."""
    n = int(window_s * SAMPLE_RATE)
    if len(audio) <= n:
        return [audio]
    return [audio[i : i + n] for i in range(0, len(audio), n)]


def _now() -> float:
    return time.perf_counter()


# A function from (asr, features (B, mels, 3000)) to encoder states (B, T, d); sparsification
# and quantization swap in their own. Rows may end in zero frames (padding, see `states`); an
# approximate encoder may carry a `guard` (LoopGuard) attribute.
EncoderFn = Callable[[WhisperASR, torch.Tensor], torch.Tensor]


def dense_encoder(asr: WhisperASR, features: torch.Tensor) -> torch.Tensor:
    """Whisper's encoder, unchanged."""
    return asr.model.model.encoder(features).last_hidden_state


# model -> (weights key, its lean decoder): building one fuses the decoder's weights and its
# int8 vocabulary screen (~0.2 s for tiny.en), which searches would otherwise pay per setting
_LEAN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_lean_decoder(model) -> LeanDecoder:
    """The lean decoder of `model`'s decoder weights as they are now: built once and kept
    while no decoder weight is replaced, written in place or given other formats."""
    modules = [*model.model.decoder.modules(), model.proj_out]
    key = tuple(
        (id(p), p.data_ptr(), p._version, str(getattr(m, "formats", "")))
        for m in modules
        for p in m.parameters(recurse=False)
    )
    hit = _LEAN.get(model)
    if hit is None or hit[0] != key:
        hit = (key, LeanDecoder(model))
        _LEAN[model] = hit
    return hit[1]


class Transcriber:
    """Runs one Whisper over batches of audio with the lean decoder of its weights."""

    def __init__(
        self,
        asr: WhisperASR,
        options: DecodeOptions | None = None,
        encoder: EncoderFn | None = None,
    ):
        self.asr = asr
        self.options = options or DecodeOptions()
        self.encoder = encoder or dense_encoder
        self.guard: LoopGuard | None = getattr(self.encoder, "guard", None)

    def lean_decoder(self) -> LeanDecoder:
        """The lean decoder of this model's current weights (shared by every Transcriber of
        the model, rebuilt when any decoder weight has changed)."""
        return shared_lean_decoder(self.asr.model)

    def features(self, windows: Sequence[np.ndarray]) -> torch.Tensor:
        """Log-mel features, padded to 30 s: (B, mels, 3000)."""
        feats = self.asr.feature_extractor(list(windows))
        return feats.to(dtype=next(self.asr.model.parameters()).dtype)

    @torch.inference_mode()
    def _detect_language(self, lean: LeanDecoder, enc: torch.Tensor) -> list[str]:
        lang_to_id = self.asr.model.generation_config.lang_to_id
        names, ids = zip(*lang_to_id.items(), strict=True)
        logits = lean.prompt_logits(enc, [self.asr.token_ids["sot"]])[:, list(ids)]
        return [names[i][2:-2] for i in logits.argmax(-1).tolist()]

    def is_silent(self, audio: np.ndarray) -> bool:
        """True when the audio's peak level is below `options.silence_db` (no signal)."""
        db = self.options.silence_db
        return db is not None and peak_dbfs(audio) < db

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
        heard = [i for i, w in enumerate(windows) if not self.is_silent(w)]
        guard = self.guard is not None
        tokens, avg_logprob = self._decode_short(
            enc if len(heard) == len(windows) else enc[heard], languages, prompts, heard, guard
        )
        t3 = _now()
        timing = {
            "features_ms": 1e3 * (t1 - t0),
            "encoder_ms": 1e3 * (t2 - t1),
            "decoder_ms": 1e3 * (t3 - t2),
        }
        guarded = [False] * len(windows)
        if guard and heard:
            fired = self._guard_fires(enc, prompts, tokens, heard, avg_logprob)
            if fired:
                dense = dense_encoder(asr, feats[fired])
                redo, _ = self._decode_short(dense, languages, prompts, fired)
                rows = [states.trim(r) for r in enc]
                for k, i in enumerate(fired):
                    tokens[i], rows[i], guarded[i] = redo[i], dense[k], True
                enc = states.stack(rows)
            timing["guard_ms"] = 1e3 * (_now() - t3)
        timing["total_ms"] = sum(timing.values())
        return WindowBatch(tokens, languages, prompts, timing, enc, guarded)

    def _decode_short(
        self,
        enc: torch.Tensor,
        languages: list[str | None],
        prompts: list[list[int]],
        which: list[int],
        logprobs: bool = False,
    ) -> tuple[list[list[int]], dict[int, float]]:
        """Tokens (no timestamps) of the windows numbered `which`, whose states are the rows
        of `enc` in that order; `languages` and `prompts` cover every window. Windows not in
        `which` get no tokens. With `logprobs`, the lean decoder's mean log-probability per
        token of each window too (nats; generate() gives none)."""
        opts = self.options
        tokens: list[list[int]] = [[] for _ in prompts]
        avg: dict[int, float] = {}
        # one prompt shape per call; languages may differ within a batch
        for lang in dict.fromkeys(languages[i] for i in which):
            rows = [k for k, i in enumerate(which) if languages[i] == lang]
            idx = [which[k] for k in rows]
            if opts.method == "lean":
                lean, mine = self.lean_decoder(), [prompts[i] for i in idx]
                if opts.beam_size == 1:
                    d = lean.decode(enc[rows], mine, opts.max_new_tokens, logprobs=logprobs)
                else:
                    d = lean.beam_search(enc[rows], mine, opts.beam_size, opts.max_new_tokens)
                out = d.tokens
                if logprobs:
                    avg.update({i: d.avg_logprob(k) for k, i in enumerate(idx)})
            else:
                out = self._generate(enc[rows], [prompts[i] for i in idx])
            for i, toks in zip(idx, out, strict=True):
                tokens[i] = toks
        return tokens, avg

    def _guard_fires(
        self,
        enc: torch.Tensor,
        prompts: list[list[int]],
        tokens: list[list[int]],
        heard: list[int],
        avg_logprob: dict[int, float],
    ) -> list[int]:
        """Windows whose text loops (compression ratio) or whose tokens are improbable (mean
        log-probability from decoding; teacher-forced when generate() decoded)."""
        guard, decode = self.guard, self.asr.tokenizer.decode
        loops = [i for i in heard if guard.loops(decode(tokens[i], skip_special_tokens=True))]
        rest = [i for i in heard if i not in loops]
        if guard.logprob is None or not rest:
            return loops
        unknown = [i for i in rest if i not in avg_logprob]
        if unknown:
            d = self.lean_decoder().score(
                enc[unknown], [prompts[i] for i in unknown], [tokens[i] for i in unknown]
            )
            avg_logprob = {**avg_logprob, **{i: d.avg_logprob(k) for k, i in enumerate(unknown)}}
        low = [i for i in rest if avg_logprob[i] < guard.logprob]
        return sorted(loops + low)

    def _generate(
        self,
        enc: torch.Tensor,
        prompts: list[list[int]],
        timestamps: bool = False,
        temperature: float = 0.0,
    ) -> list[list[int]]:
        """transformers' generate() (greedy or beam search, or sampling at `temperature` > 0)
        on a transformers model sharing this one's modules: the reference decoder."""
        from frugal.models.optional import require

        outputs = require("transformers.modeling_outputs", "method='generate'")
        BaseModelOutput = outputs.BaseModelOutput

        opts, asr = self.options, self.asr
        if states.frame_mask(enc) is not None:  # generate() has no cross-attention mask
            return [
                self._generate(states.trim(row)[None], [p], timestamps, temperature)[0]
                for row, p in zip(enc, prompts, strict=True)
            ]
        eot = asr.token_ids["eot"]
        out = []
        for prompt in dict.fromkeys(map(tuple, prompts)):
            idx = [i for i, p in enumerate(prompts) if tuple(p) == prompt]
            kwargs: dict = {"num_beams": opts.beam_size, "do_sample": False}
            if temperature > 0:
                kwargs = {"num_beams": 1, "do_sample": True, "temperature": temperature}
            if timestamps:
                kwargs["return_timestamps"] = True
                kwargs["max_new_tokens"] = opts.long_form.sample_len
            if opts.max_new_tokens is not None:
                kwargs["max_new_tokens"] = opts.max_new_tokens
            seqs = asr.model.to_transformers().generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=enc[idx]),
                decoder_input_ids=torch.tensor([list(prompt)] * len(idx)),
                **kwargs,
            )
            if isinstance(seqs, dict):
                seqs = seqs["sequences"]
            for i, row in zip(idx, seqs.tolist(), strict=True):
                if row[: len(prompt)] == list(prompt):
                    row = row[len(prompt) :]
                out.append((i, row[: row.index(eot)] if eot in row else row))
        return [t for _, t in sorted(out, key=lambda it: it[0])]

    def transcribe(
        self,
        audios: Sequence[np.ndarray],
        progress: Callable[[float], None] | None = None,
    ) -> list[Transcript]:
        """Transcribe 16 kHz mono waveforms. Up to 30 s: one window without timestamps (unless
        `options.timestamps`); longer: long-form decoding as `options.long_form` says.
        `progress(seconds)` is called with each stretch of audio finished."""
        lf = self.options.long_form
        short, long = [], []
        for i, audio in enumerate(audios):
            fits = len(audio) <= int(WINDOW_S * SAMPLE_RATE)
            (short if fits and not self.options.timestamps else long).append(i)
        if lf.mode == "windows":  # fixed windows without timestamps, for comparison
            short, long = list(range(len(audios))), []
        if lf.mode == "chunks":
            return [self._transcribe_chunks(a, progress) for a in audios]
        out: dict[int, Transcript] = {}
        out.update(self._transcribe_windows([audios[i] for i in short], short, progress))
        out.update(self._transcribe_long([audios[i] for i in long], long, progress))
        return [out[i] for i in range(len(audios))]

    def _transcribe_windows(
        self, audios: list[np.ndarray], owners: list[int], progress
    ) -> dict[int, Transcript]:
        """Consecutive 30 s windows decoded without timestamps, texts joined."""
        windows, owner = [], []
        for i, audio in zip(owners, audios, strict=True):
            for w in split_windows(audio):
                windows.append(w)
                owner.append(i)
        results: list[tuple[list[int], str | None, dict, bool]] = []
        bs = self.options.batch_size
        for start in range(0, len(windows), bs):
            batch = windows[start : start + bs]
            wb = self.decode_windows(batch)
            share = {k: v / len(batch) for k, v in wb.timings_ms.items()}
            guarded = wb.guarded or [False] * len(batch)
            results.extend(zip(wb.tokens, wb.languages, [share] * len(batch), guarded, strict=True))
            if progress is not None:
                progress(sum(len(w) for w in batch) / SAMPLE_RATE)
        out = {}
        for i, audio in zip(owners, audios, strict=True):
            parts = [r for r, o in zip(results, owner, strict=True) if o == i]
            tokens = [t for toks, *_ in parts for t in toks]
            texts = [
                self.asr.tokenizer.decode(toks, skip_special_tokens=True).strip()
                for toks, *_ in parts
            ]
            timings: dict[str, float] = {}
            for _, _, tm, _ in parts:
                for k, v in tm.items():
                    timings[k] = timings.get(k, 0.0) + v
            duration = len(audio) / SAMPLE_RATE
            out[i] = Transcript(
                text=" ".join(t for t in texts if t),
                tokens=tokens,
                duration_s=duration,
                windows=len(parts),
                language=parts[0][1],
                timings_ms=timings,
                segments=[
                    Segment(k * WINDOW_S, min((k + 1) * WINDOW_S, duration), text)
                    for k, text in enumerate(texts)
                    if text
                ],
                decoding="short" if len(parts) == 1 else "windows",
                guarded=sum(g for *_, g in parts),
            )
        return out

    def iter_chunks(
        self, audio: np.ndarray
    ) -> Iterator[tuple[Segment | None, dict[str, float], str | None]]:
        """Speech chunks of one recording (VAD, at most 30 s each) decoded once without
        timestamps, `batch_size` at a time, as each batch is consumed: per chunk, a segment
        timed by the chunk (None when it holds no text), its share of the batch's timings in
        ms, its language."""
        lf = self.options.long_form
        t0 = _now()
        chunks = speech_chunks(audio, lf.vad)
        vad_ms = 1e3 * (_now() - t0)
        bs = self.options.batch_size
        for first in range(0, len(chunks), bs):
            spans = chunks[first : first + bs]
            wb = self.decode_windows([audio[a:b] for a, b in spans])
            share = {k: v / len(spans) for k, v in wb.timings_ms.items()}
            if first == 0:
                share = {**share, "vad_ms": vad_ms}
            for (a, b), toks, lang in zip(spans, wb.tokens, wb.languages, strict=True):
                text = self.asr.tokenizer.decode(toks, skip_special_tokens=True).strip()
                start, end = round(a / SAMPLE_RATE, 3), round(b / SAMPLE_RATE, 3)
                seg = Segment(start, end, text, tokens=list(toks), seek=round(start * 100))
                yield (seg if text else None), share, lang

    def _transcribe_chunks(self, audio: np.ndarray, progress) -> Transcript:
        segments, timings, language = [], {}, None
        done_s, chunks = 0.0, 0
        for seg, share, lang in self.iter_chunks(audio):
            chunks += 1
            language = language or lang
            for k, v in share.items():
                timings[k] = timings.get(k, 0.0) + v
            if seg is None:
                continue
            segments.append(seg)
            if progress is not None:
                progress(seg.end - done_s)
                done_s = seg.end
        duration = len(audio) / SAMPLE_RATE
        if progress is not None and duration > done_s:
            progress(duration - done_s)
        if timings:
            timings["total_ms"] = sum(v for k, v in timings.items() if k != "total_ms")
        return Transcript(
            text=" ".join(g.text for g in segments),
            tokens=[t for g in segments for t in g.tokens],
            duration_s=duration,
            windows=chunks,
            language=language,
            timings_ms=timings,
            segments=segments,
            decoding="chunks",
        )

    # -- long-form -----------------------------------------------------------------------

    def timestamp_rules(self) -> TimestampRules:
        ids = self.asr.token_ids
        steps = round(self.options.long_form.max_initial_timestamp / 0.02)
        return TimestampRules(ids["timestamp_begin"], ids["no_timestamps"], ids["eot"], steps)

    def _prompt(self, stream: Stream, enc: torch.Tensor) -> tuple[list[int], int]:
        """Start-of-transcript sequence without `<|notimestamps|>`, after the previous text
        when conditioning on it; and the index of start-of-transcript in it."""
        asr, opts = self.asr, self.options
        if asr.multilingual and stream.language is None:
            stream.language = opts.language or self._detect_language(self.lean_decoder(), enc)[0]
        sot_seq = asr.prompt_ids(stream.language, opts.task)[:-1]
        if not stream.history:
            return sot_seq, 0
        keep = self.lean_decoder().max_length // 2 - 1
        prev = [asr.token_ids["sot_prev"], *stream.history[-keep:]]
        return prev + sot_seq, len(prev)

    def _decode_long(
        self,
        streams: Sequence[Stream],
        enc: torch.Tensor,
        prompts: list[list[int]],
        sots: list[int],
        temperature: float,
    ) -> list[WindowResult]:
        opts, asr = self.options, self.asr
        lf, lean = opts.long_form, self.lean_decoder()
        ids = asr.token_ids
        max_new = lf.sample_len if opts.max_new_tokens is None else opts.max_new_tokens
        if opts.method == "lean" and opts.beam_size > 1 and temperature == 0:
            d = lean.beam_search(
                enc,
                prompts,
                opts.beam_size,
                max_new_tokens=max_new,
                timestamps=self.timestamp_rules(),
                sot_index=sots[0],
                no_speech_id=ids["no_speech"],
            )
        elif opts.method == "lean":
            gens = None
            if temperature > 0:  # a seed per window, so a draw does not depend on the batch
                gens = [
                    torch.Generator().manual_seed(
                        hash((lf.seed, s.owner, round(s.offset_s * 1000), s.seek, temperature))
                        % 2**63
                    )
                    for s in streams
                ]
            d = lean.decode(
                enc,
                prompts,
                max_new_tokens=max_new,
                timestamps=self.timestamp_rules(),
                temperature=temperature,
                generators=gens,
                sot_index=sots[0],
                no_speech_id=ids["no_speech"],
            )
        else:
            tokens = self._generate(enc, prompts, timestamps=True, temperature=temperature)
            d = lean.score(enc, prompts, tokens, sot_index=sots[0], no_speech_id=ids["no_speech"])
        out = []
        for i in range(len(streams)):
            text = asr.tokenizer.decode(
                [t for t in d.tokens[i] if t < ids["eot"]], skip_special_tokens=True
            )
            out.append(
                WindowResult(
                    tokens=d.tokens[i],
                    text=text,
                    avg_logprob=d.avg_logprob(i),
                    no_speech_prob=float(d.no_speech_probs[i]),
                    compression_ratio=compression_ratio(text),
                    temperature=temperature,
                )
            )
        return out

    def alignment_heads(self) -> list[tuple[int, int]]:
        """(layer, head) pairs whose cross-attention follows the audio: the checkpoint's, or
        every head of the decoder's upper half (the reference's default)."""
        heads = getattr(self.asr.model.generation_config, "alignment_heads", None)
        if heads:
            return [(int(a), int(b)) for a, b in heads]
        cfg = self.asr.config
        return [
            (layer, head)
            for layer in range(cfg.decoder_layers // 2, cfg.decoder_layers)
            for head in range(cfg.decoder_attention_heads)
        ]

    @torch.inference_mode()
    def _align(
        self, stream: Stream, enc: torch.Tensor, segments: list[Segment], frames: int, start: float
    ) -> None:
        """Word timestamps of one window's segments (`start`: the window's time in s). A
        sparsified window is aligned on the dense encoder's states: times need every frame."""
        from frugal.tasks.asr.alignment import align_words, fit_to_segment, word_duration_limits

        if enc.shape[0] != self.asr.config.max_source_positions:  # a sparsified window
            enc = dense_encoder(self.asr, self.features([stream.window()]))[0]
        eot = self.asr.token_ids["eot"]
        per_segment = [[t for t in g.tokens if t < eot] for g in segments]
        text = [t for toks in per_segment for t in toks]
        prompt = self.asr.prompt_ids(stream.language, self.options.task)
        qk, probs = self.lean_decoder().alignment(enc[None], prompt, text, self.alignment_heads())
        words = align_words(
            qk,
            probs.numpy(),
            text,
            n_frames=frames // 2,
            decode=lambda toks: self.asr.tokenizer.decode(toks, skip_special_tokens=True),
            eot=eot,
            language=stream.language,
        )
        median, _ = word_duration_limits(words)
        last_speech = next((g.words[-1].end for g in reversed(stream.segments) if g.words), start)
        k = 0
        for g, toks in zip(segments, per_segment, strict=True):
            g.words, used = [], 0
            while k < len(words) and used < len(toks):
                w = words[k]
                used += len(w.tokens)
                k += 1
                if w.word.strip():
                    w.start, w.end = start + w.start, start + w.end
                    g.words.append(w)
            fit_to_segment(g.words, g.start, g.end, median, last_speech)
            if g.words:
                last_speech = g.words[-1].end
            for w in g.words:
                w.start, w.end = round(w.start, 3), round(w.end, 3)
                w.probability = round(w.probability, 4)

    def long_form_runner(self) -> LongFormRunner:
        """The seeking / fallback driver with this transcriber's features, encoder and
        decoder plugged in."""
        return LongFormRunner(
            self.options.long_form,
            self.timestamp_rules(),
            is_silent=self.is_silent,
            features=self.features,
            encode=lambda feats: self.encoder(self.asr, feats),
            prompt=self._prompt,
            decode=self._decode_long,
            decode_text=lambda toks: self.asr.tokenizer.decode(toks, skip_special_tokens=True),
            batch_size=self.options.batch_size,
            align=self._align,
            guard=self.guard,
            encode_dense=None if self.guard is None else lambda f: dense_encoder(self.asr, f),
        )

    def iter_segments(
        self, audio: np.ndarray, prompt_tokens: Sequence[int] = ()
    ) -> Iterator[tuple[Stream, Segment]]:
        """Long-form segments of one recording in time order, each as soon as it is final:
        decoding advances only as far as the caller iterates. `prompt_tokens` are the text
        before the recording (an initial prompt), given to the first window of every stream.
        Yields (the stream it came from, the segment)."""
        streams = sorted(streams_for([audio], self.options.long_form), key=lambda s: s.offset_s)
        for s in streams:
            s.history = list(prompt_tokens)
        k, sent = 0, 0
        for _ in self.long_form_runner().rounds(streams):
            while k < len(streams):
                s = streams[k]
                for g in s.segments[sent:]:
                    yield s, g
                sent = len(s.segments)
                if not s.done:
                    break
                k, sent = k + 1, 0
        for s in streams[k:]:  # streams the runner never had to decode (all silent)
            yield from ((s, g) for g in s.segments[sent:])
            sent = 0

    def language_probs(self, audio: np.ndarray) -> dict[str, float]:
        """Probability of each language token after start-of-transcript on the first 30 s
        (multilingual checkpoints), largest first."""
        lang_to_id = self.asr.model.generation_config.lang_to_id
        if not lang_to_id:
            raise ValueError(f"{self.asr.name} is English-only: it has no language tokens")
        with torch.inference_mode():
            enc = self.encoder(self.asr, self.features([audio[: int(WINDOW_S * SAMPLE_RATE)]]))
            logits = self.lean_decoder().prompt_logits(enc, [self.asr.token_ids["sot"]])[0]
        names, ids = zip(*lang_to_id.items(), strict=True)
        probs = torch.softmax(logits[list(ids)].double(), dim=-1).tolist()
        ranked = sorted(zip(names, probs, strict=True), key=lambda it: -it[1])
        return {name[2:-2]: p for name, p in ranked}

    def _transcribe_long(
        self, audios: list[np.ndarray], owners: list[int], progress
    ) -> dict[int, Transcript]:
        if not audios:
            return {}
        lf = self.options.long_form
        streams, vad_ms = [], {}
        for i, audio in zip(owners, audios, strict=True):
            t0 = _now()
            mine = streams_for([audio], lf, [i])
            if lf.mode == "batched" or lf.vad_filter:
                vad_ms[i] = 1e3 * (_now() - t0)
            streams += mine
            if progress is not None and lf.mode == "batched":  # audio outside speech is done
                progress((len(audio) - sum(len(s.audio) for s in mine)) / SAMPLE_RATE)
        eot = self.asr.token_ids["eot"]
        runner = self.long_form_runner()
        hop = SAMPLE_RATE // 100
        with torch.inference_mode():
            runner.run(
                streams, None if progress is None else lambda s, n: progress(n * hop / SAMPLE_RATE)
            )
        out = {}
        for i, audio in zip(owners, audios, strict=True):
            mine = [s for s in streams if s.owner == i]
            segments = sorted((g for s in mine for g in s.segments), key=lambda g: g.start)
            timings = runner.timings_ms.get(i, {})
            if i in vad_ms:
                timings["vad_ms"] = vad_ms[i]
            if timings:
                timings["total_ms"] = sum(timings.values())
            out[i] = Transcript(
                text=" ".join(g.text for g in segments),
                tokens=[t for g in segments for t in g.tokens if t < eot],
                duration_s=len(audio) / SAMPLE_RATE,
                windows=sum(s.windows for s in mine),
                language=next((s.language for s in mine if s.language), None),
                timings_ms=timings,
                segments=segments,
                decoding=lf.mode,
                fallbacks=sum(s.fallbacks for s in mine),
                fallback_rules=_sum_counts(s.fallback_rules for s in mine),
                skipped=sum(s.skipped for s in mine),
                guarded=sum(s.guarded for s in mine),
            )
        return out


def transcribe(
    asr: WhisperASR, audios: Sequence[np.ndarray], options: DecodeOptions | None = None
) -> list[Transcript]:
    """Transcribe waveforms (16 kHz mono float32) with one Whisper."""
    return Transcriber(asr, options).transcribe(audios)
