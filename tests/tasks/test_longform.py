"""Long-form decoding: seeking, temperature fallback and no-speech skipping, first with a
scripted decoder (the runner's logic alone), then on tiny.en over recordings made from
built-in utterances."""

import copy

import numpy as np
import pytest
import torch

from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.guard import compression_ratio
from frugal.tasks.asr.longform import (
    LongFormOptions,
    LongFormRunner,
    Stream,
    WindowResult,
)
from frugal.tasks.asr.metrics import normalize_text
from frugal.tasks.asr.timestamps import TimestampRules

TB, EOT = 1000, 500
RULES = TimestampRules(TB, TB - 1, EOT)
SR = 16000


def scripted_runner(script, opts=None, silent=lambda a: False):
    """A runner whose decoder answers from `script(stream, temperature) -> WindowResult`."""
    calls = []

    def decode(streams, enc, prompts, sots, temperature):
        calls.append((tuple(s.seek for s in streams), temperature))
        return [script(s, temperature) for s in streams]

    runner = LongFormRunner(
        opts or LongFormOptions(),
        RULES,
        is_silent=silent,
        features=lambda windows: torch.zeros(len(windows), 1),
        encode=lambda feats: torch.zeros(feats.shape[0], 2, 3),
        prompt=lambda s, enc: ([1], 0),
        decode=decode,
        decode_text=lambda toks: " ".join(f"w{t}" for t in toks),
        batch_size=4,
    )
    return runner, calls


def result(tokens, logprob=-0.2, no_speech=0.01, text=None, temperature=0.0):
    text = text if text is not None else " ".join(f"w{t}" for t in tokens if t < EOT)
    return WindowResult(tokens, text, logprob, no_speech, compression_ratio(text), temperature)


def test_seek_resumes_after_the_last_complete_segment():
    # window 1: a complete segment 0-10 s, then one cut off by the window edge
    def script(s, t):
        if s.seek == 0:
            return result([TB, 1, 2, TB + 500, TB + 500, 3])
        return result([TB, 4, TB + 100])  # the rest: one segment, ending on a single stamp

    runner, calls = scripted_runner(script)
    stream = Stream(0, np.zeros(SR * 40, np.float32))
    runner.run([stream])
    assert [c[0] for c in calls] == [(0,), (1000,)]  # resumed at 10.00 s = 1000 frames
    assert [(g.start, g.end, g.text) for g in stream.segments] == [
        (0.0, 10.0, "w1 w2"),
        (10.0, 12.0, "w4"),
    ]
    assert stream.done and stream.windows == 2


def test_a_looping_window_falls_back_to_higher_temperatures():
    loop = " ".join(["the same words again"] * 20)

    def script(s, t):
        if t < 0.4:
            return result([TB, 1, TB + 100], text=loop, temperature=t)
        return result([TB, 7, TB + 100], temperature=t)

    runner, calls = scripted_runner(script)
    stream = Stream(0, np.zeros(SR * 2, np.float32))
    runner.run([stream])
    assert [t for _, t in calls] == [0.0, 0.2, 0.4]
    assert stream.fallbacks == 2 and stream.segments[0].temperature == 0.4
    assert stream.fallback_rules == {"compression": 2}
    assert stream.segments[0].text == "w7"


def test_when_every_temperature_fails_the_most_probable_non_loop_is_kept():
    def script(s, t):
        lp = {0.0: -3.0, 0.2: -1.5, 0.4: -2.0}[t]
        return result([TB, int(10 * t) + 1, TB + 100], logprob=lp, temperature=t)

    runner, _ = scripted_runner(script, LongFormOptions(temperatures=(0.0, 0.2, 0.4)))
    stream = Stream(0, np.zeros(SR * 2, np.float32))
    runner.run([stream])
    assert stream.fallbacks == 2 and stream.segments[0].temperature == 0.2
    assert stream.fallback_rules == {"logprob": 2}  # -3.0 and -1.5 are under -1


def test_a_silent_window_is_skipped_and_not_re_decoded():
    runner, calls = scripted_runner(
        lambda s, t: result([TB, 1, TB + 100], logprob=-1.5, no_speech=0.9)
    )
    stream = Stream(0, np.zeros(SR * 45, np.float32))
    runner.run([stream])
    assert not stream.segments and stream.skipped == 2 and len(calls) == 2


def test_windows_without_signal_are_never_decoded():
    runner, calls = scripted_runner(lambda s, t: result([TB, 1, TB + 100]), silent=lambda a: True)
    stream = Stream(0, np.zeros(SR * 70, np.float32))
    runner.run([stream])
    assert not calls and stream.skipped == 3 and stream.done


def test_vad_spans_are_seeked_to():
    runner, calls = scripted_runner(lambda s, t: result([TB, 1, TB + 100]))
    stream = Stream(0, np.zeros(SR * 100, np.float32), speech=[(4000, 4500), (9000, 9100)])
    runner.run([stream])
    assert [c[0] for c in calls] == [(4000,), (9000,)]
    assert [g.start for g in stream.segments] == [40.0, 90.0]


def test_options_round_trip_and_validate():
    opts = DecodeOptions(timestamps=True, long_form=LongFormOptions(mode="batched"))
    assert DecodeOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(ValueError, match="long-form mode"):
        LongFormOptions(mode="parallel")
    with pytest.raises(ValueError, match="unknown long-form option"):
        LongFormOptions.from_dict({"beam": 3})


# -- tiny.en on recordings made from built-in utterances -----------------------------------


def recording(builtin, indices, pause_s=0.4):
    """Utterances joined with pauses; each one's (start s, end s, audio)."""
    pause = np.zeros(int(pause_s * SR), np.float32)
    parts, spans, t = [], [], 0.0
    for i in indices:
        a = builtin[i].load()
        parts += [a, pause]
        spans.append((t, t + len(a) / SR, builtin[i].text, a))
        t += (len(a) + len(pause)) / SR
    return np.concatenate(parts), spans


def recovered(reference: str, hypothesis: str) -> int:
    found = set(normalize_text(hypothesis).split())
    return sum(w in found for w in normalize_text(reference).split())


def assert_no_sentence_lost(asr, result, spans, alone=None):
    """Each sentence is in the segments over its interval: they hold nearly as many of its
    words as the model finds in the sentence's clip alone (a lost sentence keeps at most a
    few function words that its neighbours share). `alone`: those clips' transcripts, when
    several results are checked against the same spans."""
    alone = alone or Transcriber(asr).transcribe([a for *_, a in spans])
    for (start, end, text, _), clip in zip(spans, alone, strict=True):
        near = " ".join(
            g.text for g in result.segments if g.end > start - 0.5 and g.start < end + 0.5
        )
        assert recovered(text, near) >= 0.8 * recovered(text, clip.text) - 1, (text, near)


@pytest.fixture(scope="module")
def minute(builtin):
    """63 s: 14 consecutive utterances with 0.4 s pauses, on which fixed 30 s windows decoded
    without timestamps lose 69 of 171 words."""
    return recording(builtin, range(42, 56))


@pytest.fixture(scope="module")
def minute_alone(tiny_en, minute):
    """The minute's clips transcribed one by one (what `assert_no_sentence_lost` compares to)."""
    return Transcriber(tiny_en).transcribe([a for *_, a in minute[1]])


@pytest.fixture(scope="module")
def minute_sequential(tiny_en, minute):
    """The minute decoded with the default options (sequential long-form)."""
    return Transcriber(tiny_en).transcribe([minute[0]])[0]


@pytest.mark.parametrize("mode", ["sequential", "batched", "chunks"])
def test_a_minute_of_speech_loses_no_sentence(tiny_en, minute, minute_alone, mode, request):
    audio, spans = minute
    assert len(audio) / SR > 60
    if mode == "sequential":
        res = request.getfixturevalue("minute_sequential")
    else:
        opts = DecodeOptions(long_form=LongFormOptions(mode=mode))
        res = Transcriber(tiny_en, opts).transcribe([audio])[0]
    assert res.decoding == mode and res.windows >= 2
    assert_no_sentence_lost(tiny_en, res, spans, minute_alone)
    starts = [g.start for g in res.segments]
    assert starts == sorted(starts)
    for g in res.segments:
        assert 0 <= g.start <= g.end <= len(audio) / SR
    # seeking covers the recording: no gap longer than the pauses (plus the clips' own
    # leading/trailing silence) between consecutive segments
    gaps = [b.start - a.end for a, b in zip(res.segments, res.segments[1:], strict=False)]
    assert max(gaps) < 1.5 and res.segments[0].start < 1.0


def test_timestamped_tokens_follow_the_rules(tiny_en, minute_sequential):
    res = minute_sequential
    tb = tiny_en.token_ids["timestamp_begin"]
    for g in res.segments:
        stamps = [t - tb for t in g.tokens if t >= tb]
        assert g.tokens[0] >= tb and g.tokens[-1] >= tb  # opened and closed by a timestamp
        assert len(stamps) == 2 and stamps[0] < stamps[1] <= 1500  # within the window


def test_batches_give_the_same_segments_as_one_by_one(tiny_en, minute, minute_sequential, builtin):
    audio, _ = minute
    other, _ = recording(builtin, range(5, 60, 10))
    tr = Transcriber(tiny_en)  # the options minute_sequential was decoded with
    together = tr.transcribe([audio, other])
    alone = [minute_sequential, tr.transcribe([other])[0]]
    for x, y in zip(together, alone, strict=True):
        assert [(g.start, g.end, g.text) for g in x.segments] == [
            (g.start, g.end, g.text) for g in y.segments
        ]


def test_forced_fallback_on_real_windows_is_seeded_and_counted(tiny_en, builtin):
    audio, _ = recording(builtin, range(3, 12, 6))  # two utterances: one window
    lf = LongFormOptions(compression_ratio_threshold=0.1, temperatures=(0.0, 0.5, 1.0))
    tr = Transcriber(tiny_en, DecodeOptions(timestamps=True, long_form=lf))
    first, again = tr.transcribe([audio])[0], tr.transcribe([audio])[0]
    assert first.fallbacks == 2 * first.windows  # every window "loops": all temperatures
    assert sum(first.fallback_rules.values()) == first.fallbacks
    assert set(first.fallback_rules) <= {"compression", "both"}
    assert first.text == again.text  # sampling is seeded per window


def test_silence_gives_an_empty_transcript_without_decoding(tiny_en, monkeypatch):
    tr = Transcriber(tiny_en, DecodeOptions(timestamps=True))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the decoder ran on silence")

    monkeypatch.setattr(tr, "_decode_long", no_decoding)
    rng = np.random.default_rng(0)
    brown = np.cumsum(rng.standard_normal(SR * 20)).astype(np.float32)
    brown = (brown - brown.mean()) * 0.02 / np.abs(brown).max()
    for audio in (np.zeros(SR * 45, np.float32), brown):
        lf = LongFormOptions(mode="batched")
        batched = Transcriber(tiny_en, DecodeOptions(timestamps=True, long_form=lf))
        monkeypatch.setattr(batched, "_decode_long", no_decoding)
        assert batched.transcribe([audio])[0].text == ""
    assert tr.transcribe([np.zeros(SR * 45, np.float32)])[0].text == ""  # no signal at all


@pytest.mark.parametrize("seconds", [0.0001, 0.1, 1.0])
def test_very_short_audio(tiny_en, seconds):
    audio = (0.01 * np.random.default_rng(0).standard_normal(int(seconds * SR))).astype(np.float32)
    for mode in ("sequential", "batched"):
        opts = DecodeOptions(timestamps=True, long_form=LongFormOptions(mode=mode))
        res = Transcriber(tiny_en, opts).transcribe([audio])[0]
        assert isinstance(res.text, str) and res.duration_s == len(audio) / SR


@pytest.mark.slow
def test_composes_with_quantized_weights_sparsity_and_generate(tiny_en, builtin, minute_alone):
    from frugal.sparsify import SparsifyConfig, sparse_encoder
    from frugal.tasks.asr.quantize import quantize_whisper

    audio, spans = recording(builtin, range(42, 50))  # the minute's first 8 utterances
    assert len(audio) > 30 * SR  # two windows
    q = copy.deepcopy(tiny_en)
    quantize_whisper(q, "int8_pc")
    systems = [
        Transcriber(q),
        Transcriber(tiny_en, encoder=sparse_encoder(SparsifyConfig(layer=1, sparsity=0.1))),
        Transcriber(tiny_en, DecodeOptions(method="generate")),  # transformers' greedy
    ]
    alone = minute_alone[: len(spans)]  # the same clips, transcribed one by one
    for tr in systems:
        res = tr.transcribe([audio])[0]
        assert res.decoding == "sequential"
        assert_no_sentence_lost(tiny_en, res, spans, alone)
