"""Whisper base (multilingual, split over two packages; the `base` extra, installed by CI)."""

import ctranslate2
import numpy as np
import pytest
import torch

import frugal
from frugal.models.registry import CHECKPOINTS
from frugal.tasks.asr import DecodeOptions, Transcriber
from tests.tolerance import assert_fp32_pair_close

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base():
    return frugal.load("base")


def test_base_shapes_and_token_ids(base):
    cfg = base.config
    assert (cfg.encoder_layers, cfg.d_model, cfg.vocab_size) == (6, 512, 51865)
    assert base.multilingual
    ids = base.token_ids
    # multilingual ids sit one above English-only ones: taken from the tokenizer
    assert (ids["eot"], ids["sot"], ids["no_timestamps"]) == (50257, 50258, 50363)
    assert base.prompt_ids("en") == [50258, 50259, 50359, 50363]
    assert base.prompt_ids("de", "translate")[1:3] == [base.language_id("de"), ids["translate"]]
    with pytest.raises(ValueError, match="unknown language"):
        base.prompt_ids("xx")


def test_base_tokenizer_has_its_lost_merge_back(base):
    # the packaged tokenizer.json lacks the merge "Ġ t": " the" must still be one token
    tok = base.tokenizer
    assert tok.convert_ids_to_tokens(tok.encode(" the salt", add_special_tokens=False)) == [
        "Ġthe",
        "Ġsalt",
    ]


def test_base_encoder_matches_ctranslate2(base, builtin, tmp_path):
    ckpt = CHECKPOINTS["base"]
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (tmp_path / name).write_bytes((ckpt.folder() / name).read_bytes())
    (tmp_path / "model.bin").write_bytes(b"".join(p.read_bytes() for p in ckpt.model_parts()))
    ct = ctranslate2.models.Whisper(str(tmp_path), device="cpu", compute_type="float32")
    feats = Transcriber(base).features([builtin[0].load(), builtin[1].load()])
    ref = np.array(ct.encode(ctranslate2.StorageView.from_array(feats.numpy()), to_cpu=True))
    with torch.inference_mode():
        ours = base.model.model.encoder(feats).last_hidden_state.numpy()
    assert_fp32_pair_close(ours, ref, "base encoder vs CTranslate2")  # two fp32 paths
    tokens = Transcriber(base).decode_windows([builtin[0].load(), builtin[1].load()]).tokens
    gen = ct.generate(
        ctranslate2.StorageView.from_array(feats.numpy()),
        [base.prompt_ids("en")] * 2,
        beam_size=1,
        suppress_blank=True,
        suppress_tokens=[-1],
    )
    assert tokens == [g.sequences_ids[0] for g in gen]


def test_base_lean_equals_generate_and_detects_english(base, builtin):
    audios = [u.load() for u in builtin.take(4)]
    lean = Transcriber(base, DecodeOptions(language=None, batch_size=4)).transcribe(audios)
    gen = Transcriber(base, DecodeOptions(method="generate", batch_size=4)).transcribe(audios)
    assert [t.language for t in lean] == ["en"] * 4
    assert [t.tokens for t in lean] == [t.tokens for t in gen]
    assert "salt" in lean[0].text.lower()


def test_long_form_detects_the_language_per_recording(base, builtin):
    from frugal.tasks.asr.metrics import normalize_text

    pause = np.zeros(6400, np.float32)
    utts = [builtin[i] for i in range(2, 90, 11)]
    audio = np.concatenate([x for u in utts for x in (u.load(), pause)])
    res = Transcriber(base, DecodeOptions(language=None)).transcribe([audio])[0]
    assert res.language == "en" and res.decoding == "sequential" and res.windows >= 2
    words = normalize_text(" ".join(u.text for u in utts)).split()
    found = set(normalize_text(res.text).split())
    assert sum(w in found for w in words) >= 0.8 * len(words)
