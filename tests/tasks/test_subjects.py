"""Subjects: the right kind of model behind each name, and batches of the asked sizes."""

from __future__ import annotations

import pytest

from frugal.tasks.subjects import SubjectConfig, is_whisper, load_subject
from tests.lm_helpers import save_tiny_lm


def test_is_whisper_by_name_and_folder(tmp_path, small_ct2_folder):
    assert is_whisper("tiny.en") and is_whisper("openai/whisper-tiny")
    assert is_whisper(str(small_ct2_folder))  # a faster-whisper folder (model.bin)
    lm = save_tiny_lm(tmp_path / "lm")
    assert not is_whisper(str(lm)) and not is_whisper("gpt2")


def test_whisper_subject_splits_and_scores():
    cfg = SubjectConfig(calibration=3, heldout=2, probe=1)
    s = load_subject("tiny.en", cfg)
    assert s.family == "whisper" and s.stacks == ("model.encoder.layers", "model.decoder.layers")
    assert sum(b.examples for b in s.calibration) == 3
    assert sum(b.examples for b in s.heldout) == 2 and sum(b.examples for b in s.probe) == 1
    assert 0 < s.nll() < 5 and 0 <= s.wer() <= 100
    assert s.info["utterances"] == 2


def test_lm_subject_from_a_folder(tmp_path):
    cfg = SubjectConfig(calibration=4, heldout_tokens=300, probe=2, context=64)
    s = load_subject(str(save_tiny_lm(tmp_path / "lm")), cfg)
    assert s.pattern == "model.layers.*" and s.wer() is None
    assert sum(b.examples for b in s.calibration) == 4
    assert s.info == {"heldout_tokens": 300, "context": 64}
    assert sum(b.tokens for b in s.heldout) == 299  # every held-out token but the first
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        load_subject(str(tmp_path / "missing"), cfg)
