"""Conversion of CTranslate2 Whisper checkpoints into frugal's Whisper modules (transformers'
parameter names)."""

import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration

from frugal.models import CT2FormatError, load_ct2_whisper, load_whisper
from frugal.models.registry import CHECKPOINTS
from tests.conftest import ct2_variables_from_hf, small_whisper_config, write_ct2


def test_small_random_model_converts_exactly(small_ct2_folder):
    model, _tok, fe, ids = load_ct2_whisper(small_ct2_folder)
    ref = torch.load(small_ct2_folder / "reference_state.pt")
    got = model.state_dict()
    for name, tensor in ref.items():
        if name.endswith("k_proj.bias"):
            continue
        assert torch.equal(got[name], tensor), name
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert model.config.encoder_layers == 2 and model.config.d_model == 64
    assert ids["sot"] == 50257 and ids["no_timestamps"] == 50362
    assert fe.feature_size == 80


def test_int8_checkpoint_dequantizes_close(small_ct2_folder, tmp_path):
    torch.manual_seed(0)
    from transformers import WhisperForConditionalGeneration

    ref = WhisperForConditionalGeneration(small_whisper_config()).eval()
    for name in ("tokenizer.json", "config.json"):
        (tmp_path / name).write_bytes((small_ct2_folder / name).read_bytes())
    write_ct2(tmp_path / "model.bin", ct2_variables_from_hf(ref, int8=True))
    model, *_ = load_ct2_whisper(tmp_path)
    w_ref = ref.model.encoder.layers[0].fc1.weight
    w = model.model.encoder.layers[0].fc1.weight
    step = w_ref.abs().amax(1, keepdim=True) / 127
    assert ((w - w_ref).abs() <= step / 2 + 1e-7).all()
    assert not torch.equal(w, w_ref)


def test_wrong_spec_and_missing_files(small_ct2_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_ct2_whisper(tmp_path)
    for name in ("tokenizer.json", "config.json"):
        (tmp_path / name).write_bytes((small_ct2_folder / name).read_bytes())
    write_ct2(tmp_path / "model.bin", {"x": np.zeros(1, np.float32)}, spec="TransformerSpec")
    with pytest.raises(CT2FormatError, match="not a Whisper"):
        load_ct2_whisper(tmp_path)


def test_packaged_tiny_en(tiny_en):
    cfg = tiny_en.config
    assert (cfg.encoder_layers, cfg.decoder_layers, cfg.d_model, cfg.vocab_size) == (
        4,
        4,
        384,
        51864,
    )
    assert not tiny_en.multilingual
    gc = tiny_en.model.generation_config
    assert gc.begin_suppress_tokens == [220, 50256]
    assert 50257 in gc.suppress_tokens and gc.alignment_heads[0] == [1, 0]
    assert tiny_en.prompt_ids() == [50257, 50362]


def test_transformers_folder_roundtrip(tiny_en, tmp_path):
    folder = tiny_en.save(tmp_path / "hf")
    again = load_whisper(folder)
    feats = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        a = tiny_en.model.model.encoder(feats).last_hidden_state
        b = again.model.model.encoder(feats).last_hidden_state
    assert torch.equal(a, b)
    assert again.token_ids == tiny_en.token_ids
    assert (
        again.model.generation_config.suppress_tokens
        == tiny_en.model.generation_config.suppress_tokens
    )


def test_bad_model_names(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        load_whisper("nope")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="folder, not a file"):
        load_whisper(tmp_path / "file.bin")
    with pytest.raises(FileNotFoundError, match=r"neither model\.bin"):
        load_whisper(tmp_path)
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match="could not load 'someone/whisper-x'"):
        load_whisper("someone/whisper-x")


def test_missing_merges_finds_unproduced_two_character_tokens():
    from frugal.models.whisper_ct2 import missing_merges

    vocab = {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "bc": 5, "<|x|>": 6}
    tj = {
        "model": {"type": "BPE", "vocab": vocab, "merges": ["b c", "ab c"]},
        "added_tokens": [{"content": "<|x|>"}],
    }
    assert missing_merges(tj) == ["a b"]
    tj["model"]["merges"] = [["a", "b"], ["b", "c"], ["ab", "c"]]  # the list-of-pairs layout
    assert missing_merges(tj) == []
    assert missing_merges({"model": {"type": "Unigram"}}) == []


@pytest.mark.parametrize("int8", [False, True])
def test_a_stored_projection_must_equal_the_embeddings(tmp_path, int8):
    """A checkpoint that stores the output projection apart (no alias) loads when it equals
    the token embeddings, compared as stored, and is refused when it differs."""
    torch.manual_seed(0)
    hf = WhisperForConditionalGeneration(small_whisper_config()).eval()
    v = ct2_variables_from_hf(hf)
    if int8:  # embeddings stored as int8 codes with a scale per row, as CTranslate2 does
        emb = v["decoder/embeddings/weight"]
        scale = (127.0 / np.maximum(np.abs(emb).max(1), 1e-8)).astype(np.float32)
        v["decoder/embeddings/weight"] = np.round(emb * scale[:, None]).astype(np.int8)
        v["decoder/embeddings/weight_scale"] = scale
    src = CHECKPOINTS["tiny.en"].folder()
    for name, proj in (("same", v["decoder/embeddings/weight"]), ("other", None)):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("tokenizer.json", "config.json"):
            (folder / f).write_bytes((src / f).read_bytes())
        variables = dict(v)
        if proj is None:  # one entry changed
            proj = v["decoder/embeddings/weight"].copy()
            proj[5, 3] = (2 if proj[5, 3] == 1 else 1) if int8 else proj[5, 3] + np.float32(1e-3)
        variables["decoder/projection/weight"] = proj
        if int8:
            variables["decoder/projection/weight_scale"] = v["decoder/embeddings/weight_scale"]
        write_ct2(folder / "model.bin", variables)
        if name == "same":
            load_ct2_whisper(folder)
        else:
            with pytest.raises(CT2FormatError, match="untied"):
                load_ct2_whisper(folder)
