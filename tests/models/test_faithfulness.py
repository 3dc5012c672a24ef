"""Our converted tiny.en against CTranslate2 (faster-whisper's engine) on the same features."""

import copy

import ctranslate2
import numpy as np
import pytest
import torch

from frugal.models.registry import CHECKPOINTS
from frugal.tasks.asr import DecodeOptions, Transcriber
from tests.tolerance import assert_fp32_network_close

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ct2_tiny():
    return ctranslate2.models.Whisper(
        str(CHECKPOINTS["tiny.en"].folder()), device="cpu", compute_type="float32", intra_threads=2
    )


def test_encoder_matches_ctranslate2(tiny_en, builtin, ct2_tiny):
    """CT2's fp32 encoder and ours both stay within fp32's network allowance
    (tests/tolerance.py) of a float64 run of our encoder: two fp32 implementations with other
    summation orders, while a conversion bug (a wrong weight, bias, norm or activation) is
    orders of magnitude outside it."""
    tr = Transcriber(tiny_en)
    feats = tr.features([u.load() for u in builtin.take(4)])
    ref = np.array(ct2_tiny.encode(ctranslate2.StorageView.from_array(feats.numpy()), to_cpu=True))
    encoder = tiny_en.model.model.encoder
    with torch.inference_mode():
        ours = encoder(feats).last_hidden_state.numpy()
        exact = copy.deepcopy(encoder).double()(feats.double()).last_hidden_state.numpy()
    assert_fp32_network_close(ours, exact, "ours")
    assert_fp32_network_close(ref, exact, "CTranslate2")


def one_per_voice(builtin) -> list:
    """The first utterance of each of the built-in set's 12 voices: every engine and voice,
    in a fourteenth of the time of the whole set (`python benchmarks/reproduce.py --only
    faithfulness` decodes all 175)."""
    picked: dict[str, object] = {}
    for u in builtin:
        picked.setdefault(u.meta["voice"], u)
    return list(picked.values())


def test_greedy_tokens_match_ctranslate2(tiny_en, builtin, ct2_tiny):
    tr = Transcriber(tiny_en, DecodeOptions(batch_size=8))
    utts = one_per_voice(builtin)
    assert len(utts) == 12
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
