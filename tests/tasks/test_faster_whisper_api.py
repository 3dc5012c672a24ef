"""faster-whisper's API on frugal's runtime: one script, run against both libraries."""

import dataclasses
import math

import jiwer
import numpy as np
import pytest

import frugal
from frugal.data.datasets import join_utterances
from frugal.models.registry import CHECKPOINTS
from frugal.tasks.asr.lean_decoder import LeanDecoder
from tests.conftest import TEST_THREADS


def _script(lib, model_path: str, audio: np.ndarray, **kwargs):
    """What a user of faster-whisper writes."""
    model = lib.WhisperModel(
        model_path, device="cpu", compute_type="float32", cpu_threads=TEST_THREADS
    )
    segments, info = model.transcribe(audio, **kwargs)
    return list(segments), info


@pytest.fixture(scope="module")
def recording(builtin):
    return join_utterances(builtin[:40], min_s=40.0, max_s=60.0)[0].load()


@pytest.mark.parametrize("mode", ["sequential", "batched", "batched_timestamps"])
def test_one_script_runs_on_both_libraries(recording, mode):
    import faster_whisper

    path = str(CHECKPOINTS["tiny.en"].folder())
    kwargs: dict = {"beam_size": 1}
    if mode == "sequential":
        kwargs["condition_on_previous_text"] = False
    elif mode == "batched_timestamps":
        kwargs["without_timestamps"] = False

    def run(lib, model_path):
        model = lib.WhisperModel(
            model_path, device="cpu", compute_type="float32", cpu_threads=TEST_THREADS
        )
        if mode == "sequential":
            segments, info = model.transcribe(recording, **kwargs)
        else:
            pipeline = lib.BatchedInferencePipeline(model)
            segments, info = pipeline.transcribe(recording, batch_size=4, **kwargs)
        return list(segments), info

    theirs, info_fw = run(faster_whisper, path)
    ours, info = run(frugal, "tiny.en")
    fields = [f.name for f in dataclasses.fields(type(theirs[0]))]
    assert [f.name for f in dataclasses.fields(type(ours[0]))] == fields
    assert info.language == info_fw.language
    for name in ("language_probability", "duration"):
        assert getattr(info, name) == pytest.approx(getattr(info_fw, name), abs=0.01), name
    # speech found by each library's VAD under its own defaults (padding differs)
    assert info.duration_after_vad == pytest.approx(info_fw.duration_after_vad, rel=0.05)
    assert [s.id for s in ours] == list(range(1, len(ours) + 1))
    if mode != "batched":  # chunk counts follow each VAD's cuts
        assert abs(len(ours) - len(theirs)) <= 1
    text = "".join(s.text for s in ours)
    assert text.startswith(" ") and all(s.text.startswith(" ") for s in ours)
    # fp32 both, greedy: the texts differ where the two runtimes' rounding tips a token, and
    # batched, where the two VADs cut the chunks differently (unnormalised text: punctuation
    # and case count)
    limit = 0.1 if mode == "sequential" else 0.2
    assert jiwer.wer("".join(s.text for s in theirs), text) < limit
    for s in ours:
        assert 0 <= s.start <= s.end <= info.duration + 0.01
        assert isinstance(s.tokens, list) and s.tokens and s.words is None
        if mode == "batched":  # decoded once, no scores on this path
            assert math.isnan(s.avg_logprob) and math.isnan(s.no_speech_prob)
        else:
            assert s.temperature == 0.0 and s.avg_logprob < 0 and s.compression_ratio > 0
            assert 0 <= s.no_speech_prob <= 1
    # segments come in time order; sequential starts match faster-whisper's
    assert [s.start for s in ours] == sorted(s.start for s in ours)
    if mode == "sequential":
        near = sum(any(abs(a.start - b.start) <= 0.2 for b in theirs) for a in ours)
        assert near >= len(ours) - 1


def test_segments_are_decoded_as_they_are_consumed(recording, monkeypatch):
    calls = []
    decode = LeanDecoder.decode

    def counting(self, encoder_out, *args, **kwargs):
        calls.append(encoder_out.shape[0])
        return decode(self, encoder_out, *args, **kwargs)

    monkeypatch.setattr(LeanDecoder, "decode", counting)
    model = frugal.WhisperModel("tiny.en")
    segments, info = model.transcribe(recording, beam_size=1)
    assert calls == [] and info.duration > 40  # nothing decoded yet
    first = next(segments)
    assert first.id == 1 and len(calls) == 1  # one window
    rest = list(segments)
    assert len(calls) >= 2 and rest[-1].end > 30


def test_word_timestamps_initial_prompt_and_int8(builtin):
    model = frugal.WhisperModel("tiny.en", compute_type="int8")
    assert model.asr.source["quantization"]["modules"]
    audio = builtin[1].load()
    segments, _ = model.transcribe(
        audio, beam_size=2, word_timestamps=True, initial_prompt="Kettle, tea."
    )
    segments = list(segments)
    words = [w for s in segments for w in s.words]
    assert "kettle" in "".join(s.text for s in segments).lower()
    assert words and all(w.start <= w.end for w in words)
    assert "".join(w.word for w in words).strip() == "".join(s.text for s in segments).strip()


def test_unsupported_options_say_so():
    model = frugal.WhisperModel("tiny.en")
    audio = np.zeros(16000, np.float32)
    with pytest.raises(ValueError, match="hotwords"):
        model.transcribe(audio, hotwords="frugal")
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.transcribe(audio, no_such_option=1)
    with pytest.raises(ValueError, match="initial_prompt"):
        frugal.BatchedInferencePipeline(model).transcribe(audio, initial_prompt="tea")
    with pytest.raises(ValueError, match="English-only"):
        model.transcribe(audio, language="de")
    with pytest.raises(ValueError, match="compute_type"):
        frugal.WhisperModel("tiny.en", compute_type="float16")
    with pytest.raises(ValueError, match="cpu"):
        frugal.WhisperModel("tiny.en", device="cuda")
    segments, info = model.transcribe(audio)  # silence: no segment, and no error
    assert list(segments) == [] and info.duration == pytest.approx(1.0)
