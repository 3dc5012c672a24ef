"""Our converted tiny.en against CTranslate2 (faster-whisper's engine) on the same features."""

import ctranslate2
import numpy as np
import pytest
import torch

from frugal.models.registry import CHECKPOINTS
from frugal.tasks.asr import DecodeOptions, Transcriber

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ct2_tiny():
    return ctranslate2.models.Whisper(
        str(CHECKPOINTS["tiny.en"].folder()), device="cpu", compute_type="float32", intra_threads=2
    )


def test_encoder_matches_ctranslate2(tiny_en, builtin, ct2_tiny):
    tr = Transcriber(tiny_en)
    feats = tr.features([u.load() for u in builtin.take(4)])
    ref = np.array(ct2_tiny.encode(ctranslate2.StorageView.from_array(feats.numpy()), to_cpu=True))
    with torch.inference_mode():
        ours = tiny_en.model.model.encoder(feats).last_hidden_state.numpy()
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= 1e-4 * scale, np.abs(ours - ref).max()


def test_greedy_tokens_match_ctranslate2_on_builtin_set(tiny_en, builtin, ct2_tiny):
    tr = Transcriber(tiny_en, DecodeOptions(batch_size=8))
    utts = list(builtin)
    mismatches = []
    for start in range(0, len(utts), 8):
        audios = [u.load() for u in utts[start : start + 8]]
        feats = tr.features(audios)
        ours = tr.decode_windows(audios).tokens
        ref = ct2_tiny.generate(
            ctranslate2.StorageView.from_array(feats.numpy()),
            [tiny_en.prompt_ids()] * len(audios),
            beam_size=1,
            suppress_blank=True,
            suppress_tokens=[-1],
            max_length=448,
        )
        for u, a, b in zip(utts[start : start + 8], ours, ref, strict=True):
            if a != b.sequences_ids[0]:
                mismatches.append(u.id)
    assert not mismatches, f"{len(mismatches)}/{len(utts)} differ: {mismatches}"
