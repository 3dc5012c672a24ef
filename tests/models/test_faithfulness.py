"""Our converted tiny.en against CTranslate2 (faster-whisper's engine) on the same features."""

import copy

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
    """CT2's fp32 encoder and ours must differ from a float64 run of our encoder only by fp32
    rounding. The yardstick is the rounding error our own fp32 run makes on the same input
    (measured against float64 on this CPU, whatever its BLAS path), not a fixed number: two
    fp32 implementations with different summation orders make errors of the same order, while a
    conversion bug (a wrong weight, bias, norm or activation) is orders of magnitude larger."""
    tr = Transcriber(tiny_en)
    feats = tr.features([u.load() for u in builtin.take(4)])
    ref = np.array(ct2_tiny.encode(ctranslate2.StorageView.from_array(feats.numpy()), to_cpu=True))
    encoder = tiny_en.model.model.encoder
    with torch.inference_mode():
        ours = encoder(feats).last_hidden_state.numpy()
        exact = copy.deepcopy(encoder).double()(feats.double()).last_hidden_state.numpy()

    def rms(x):
        return float(np.sqrt(np.mean(np.square(x))))

    ours_err, ct2_err = ours - exact, ref - exact
    assert 0 < rms(ours_err) < 1e-4 * rms(exact)  # our fp32 run itself is near float64
    assert rms(ct2_err) <= 8 * rms(ours_err), (rms(ct2_err), rms(ours_err))
    assert np.abs(ct2_err).max() <= 8 * np.abs(ours_err).max()


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
