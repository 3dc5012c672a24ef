"""The Whisper joint space on tiny.en: canonical dense config, bits follow the formats,
and a search over it stores what it measures."""

from __future__ import annotations

import pytest

from frugal.search.algorithms import make_algorithm
from frugal.search.runner import run_search
from frugal.search.store import SearchStore
from frugal.search.whisper_problems import WhisperJoint
from tests.tolerance import assert_fp32_pair_close

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def problem():
    return WhisperJoint(utterances=2)


def config(fmt: str, sparsity: float = 0.0, layer: int = 1) -> dict:
    return {"sparsify_layer": layer, "sparsity": sparsity,
            **{f"enc{i}": fmt for i in range(4)}, **{f"dec{i}": fmt for i in range(4)}}  # fmt: skip


def test_joint_space_shape_and_constraint(problem):
    s = problem.space
    assert s.names[:2] == ["sparsify_layer", "sparsity"] and len(s.names) == 2 + 4 + 4
    assert s.is_valid(config("bf16")) and not s.is_valid(config("bf16", 0.0, layer=2))
    assert s.is_valid(config("mxint4", 0.6, layer=2))


def test_joint_objectives(problem):
    wer_bf16, mbit_bf16 = problem.evaluate(config("bf16"))
    wer_4, mbit_4 = problem.evaluate(config("mxint4", 0.4, layer=2))
    assert mbit_4 == pytest.approx(mbit_bf16 * 4.25 / 16)
    assert problem.reference_point() == [100.0, pytest.approx(1.1 * mbit_bf16)]
    assert 0 <= wer_bf16 <= 100 and wer_4 >= 0
    with pytest.raises(ValueError, match="enc0"):
        problem.evaluate({**config("bf16"), "enc0": "int9"})


def test_the_problem_travels_to_worker_processes(problem):
    import pickle

    copy = pickle.loads(pickle.dumps(problem))  # what spawned workers and Ray receive
    assert copy.space.is_valid(config("bf16")) and not copy.space.is_valid(config("bf16", 0, 2))
    assert not hasattr(copy, "_cache_asr")  # the model is loaded again there, not shipped


def test_a_short_search_over_the_joint_space(problem, tmp_path):
    with SearchStore(tmp_path / "s.sqlite") as store:
        rows = run_search(problem, make_algorithm("random", problem.space, 2, batch=3), 3, store)
    assert len(rows) == 3 and all(r["error"] is None for r in rows)


def test_full_subnet_is_the_model_and_slicing_heads_equals_masking_them(tiny_en):
    import torch

    from frugal.search.supernet import SubnetConfig, block_params, slice_whisper

    m, c = tiny_en.model, tiny_en.config
    full = SubnetConfig(c.encoder_layers, c.decoder_layers, c.encoder_attention_heads,
                        c.encoder_ffn_dim, c.decoder_ffn_dim)  # fmt: skip
    feats = torch.randn(1, c.num_mel_bins, 3000)
    with torch.no_grad():
        ref = m.model.encoder(feats).last_hidden_state
        assert torch.equal(slice_whisper(m, full).model.encoder(feats).last_hidden_state, ref)
        # 4 of 6 heads and 3/4 of the FFN == the full model with the rest zeroed out
        sub = slice_whisper(m, SubnetConfig(c.encoder_layers, 2, 4, 1152, 1536))
        masked = slice_whisper(m, full)
        for layer in masked.model.encoder.layers:
            layer.self_attn.out_proj.weight[:, 4 * 64 :] = 0
            layer.fc2.weight[:, 1152:] = 0
        got = sub.model.encoder(feats).last_hidden_state
        assert_fp32_pair_close(got, masked.model.encoder(feats).last_hidden_state, "sliced")
    assert len(sub.model.decoder.layers) == 2 and sub.config.decoder_layers == 2
    assert block_params(sub) < block_params(m)
    with pytest.raises(ValueError, match="enc_heads=7"):
        slice_whisper(m, SubnetConfig(4, 4, 7, 1536, 1536))


def test_subnet_problem_measures_wer_and_params():
    from frugal.search.whisper_problems import WhisperSubnet

    p = WhisperSubnet(utterances=2)
    assert p.space.names == ["enc_depth", "dec_depth", "enc_heads", "enc_ffn", "dec_ffn"]
    w_full, mp_full = p.evaluate({"enc_depth": 4, "dec_depth": 4, "enc_heads": 6,
                                  "enc_ffn": 1536, "dec_ffn": 1536})  # fmt: skip
    w_small, mp_small = p.evaluate({"enc_depth": 2, "dec_depth": 2, "enc_heads": 3,
                                    "enc_ffn": 768, "dec_ffn": 768})  # fmt: skip
    assert mp_small < mp_full and w_full <= w_small


def test_nll_objective_has_fidelities_and_ranks_formats():
    p = WhisperJoint(utterances=4, accuracy="nll")
    assert p.objectives == ("nll", "mbit") and p.fidelities == (1, 2, 4)
    assert p.reference_point() is None  # derived from a search's first measurements
    terms, mbit = p.nll_terms(config("bf16"))
    assert len(terms) == 4 and all(t[0] > 0 and t[1] > 1 for t in terms)
    full = p.evaluate(config("bf16"))
    assert full == [pytest.approx(sum(t[0] for t in terms) / sum(t[1] for t in terms)), mbit]
    low = p.evaluate(config("bf16"), 1)
    # the first utterance alone vs inside a batch of 4: other GEMM blocking, same float32
    # math; worst-case dot-product error γ_n = n·u for n = 1536 (FFN) is ~1e-4 per layer
    assert low[0] == pytest.approx(terms[0][0] / terms[0][1], rel=1e-3)
    # 4-bit weights everywhere and 80% of the frames dropped cost likelihood
    assert p.evaluate(config("mxfp4", 0.8, layer=1))[0] > full[0]
    with pytest.raises(ValueError, match="fidelity 3"):
        p.evaluate(config("bf16"), 3)
    with pytest.raises(ValueError, match="no fidelities"):
        WhisperJoint(utterances=2).evaluate(config("bf16"), 1)
    with pytest.raises(ValueError, match="unknown accuracy"):
        WhisperJoint(utterances=2, accuracy="cer")
