import copy
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import frugal
from frugal.data import SpeechDataset, Utterance
from frugal.tasks.asr import DecodeOptions, Transcriber, split_windows
from frugal.tasks.asr.longform import LongFormOptions


def test_split_windows():
    assert len(split_windows(np.zeros(16000 * 30))) == 1
    parts = split_windows(np.zeros(16000 * 65))
    assert [len(p) for p in parts] == [480000, 480000, 80000]


def test_long_audio_in_fixed_windows_when_asked(tiny_en, builtin):
    a, b = builtin[1].load(), builtin[2].load()
    gap = np.zeros((16000 * 30) - len(a), np.float32)
    audio = np.concatenate([a, gap, b])  # second sentence starts in the second window
    opts = DecodeOptions(long_form=LongFormOptions(mode="windows"))
    res = Transcriber(tiny_en, opts).transcribe([audio])[0]
    assert res.windows == 2 and len(res.segments) == 2 and res.decoding == "windows"
    assert "kettle" in res.text.lower() and "bus" in res.text.lower()
    assert res.segments[1].start == 30.0


def test_long_audio_is_decoded_sequentially_with_timestamps(tiny_en, builtin):
    a, b = builtin[1].load(), builtin[2].load()
    gap = np.zeros((16000 * 30) - len(a), np.float32)
    audio = np.concatenate([a, gap, b])  # second sentence starts right at 30 s
    res = Transcriber(tiny_en).transcribe([audio])[0]
    assert res.decoding == "sequential"
    assert "kettle" in res.text.lower() and "bus" in res.text.lower()
    bus = next(g for g in res.segments if "bus" in g.text.lower())
    assert 29.0 <= bus.start <= 31.5 and bus.end <= len(audio) / 16000


def test_beam_search_runs(tiny_en, builtin):
    res = Transcriber(tiny_en, DecodeOptions(beam_size=3)).transcribe([builtin[0].load()])[0]
    assert "salt" in res.text.lower()


def test_options_validate():
    with pytest.raises(ValueError, match="unknown decoding method"):
        DecodeOptions(method="fast")


def test_evaluate_scores_and_keeps_going_after_bad_files(tiny_en, builtin, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 50)
    utts = [
        *builtin.take(3),
        Utterance("bad", bad, "some words"),
        Utterance("gone", tmp_path / "x.wav", "y"),
    ]
    result = frugal.evaluate(tiny_en, SpeechDataset("mixed", utts), warmup=1, progress=False)
    assert len(result.ok_rows) == 3 and {r.id for r in result.failed} == {"bad", "gone"}
    assert all(str(tmp_path) in r.error for r in result.failed)
    s = result.summary()
    assert 0 <= s["wer_pct"] < 30 and 0 < s["nll_per_token"] < 2
    assert s["e2e_ms_median"] > 0 and 0 < s["rtf_median"] < 5
    lat = result.latency()
    for row in result.ok_rows:
        t = row.timings_ms
        assert t["total_ms"] == pytest.approx(t["features_ms"] + t["encoder_ms"] + t["decoder_ms"])
    assert lat["total_ms"]["median"] >= lat["encoder_ms"]["median"]
    saved = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert saved["versions"]["torch"] == torch.__version__ and saved["options"]["method"] == "lean"
    assert len(saved["rows"]) == 5
    # a system one word worse on each utterance and twice as slow: +3 errors over the
    # references' words, half the speed
    worse = copy.deepcopy(result)
    for row in worse.ok_rows:
        row.word_errors += 1
        row.timings_ms = {k: 2 * v for k, v in row.timings_ms.items()}
    words = sum(r.reference_words for r in result.ok_rows)
    cmp = worse.compare(result)
    assert cmp["wer_delta_pt"] == pytest.approx(100 * 3 / words)
    assert cmp["speedup_e2e"] == pytest.approx(0.5)
    assert cmp["baseline_wer_pct"] == pytest.approx(s["wer_pct"])


def test_nll_prefers_the_right_transcript(tiny_en, builtin):
    from frugal.tasks.asr.metrics import token_nll

    tr = Transcriber(tiny_en)
    wb = tr.decode_windows([builtin[1].load()])
    right, wrong = token_nll(
        tiny_en,
        wb.encoder_out.expand(2, -1, -1),
        [builtin[1].text, builtin[5].text],
        wb.prompts * 2,
    )
    assert right[0] / right[1] < 0.5 < wrong[0] / wrong[1]


def test_silent_audio_gives_little_text(tiny_en, tmp_path):
    sf.write(tmp_path / "s.wav", np.zeros(16000 * 3, np.float32), 16000)
    res = frugal.transcribe(tiny_en, [frugal.datasets.load_audio(tmp_path / "s.wav")])[0]
    assert len(res.text.split()) <= 3
