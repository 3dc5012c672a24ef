"""Shared fixtures: the packaged tiny.en, a small random Whisper, and CT2 model writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

import frugal
from frugal.models.registry import CHECKPOINTS


def _test_threads() -> int:
    """torch threads for this test process: OMP_NUM_THREADS when set (honoured even above
    the core count, which torch alone would cap), else the usable cores shared among
    pytest-xdist's workers."""
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, cores // workers)


TEST_THREADS = _test_threads()
torch.set_num_threads(TEST_THREADS)
# Ray starts its workers at niceness 15: beside another test process (pytest-xdist) they
# would wait for the CPU most of the time; tests run them at normal priority
os.environ.setdefault("RAY_worker_niceness", "0")
# the tests start local Ray clusters: their workers use this environment (under `uv run`,
# Ray's hook would copy the checkout and build another per run); frugal sets the same for
# --ray-address local
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def write_ct2(
    path: Path,
    variables: dict[str, np.ndarray],
    aliases: dict[str, str] | None = None,
    version: int = 6,
    spec: str = "WhisperSpec",
) -> Path:
    """Write a CTranslate2 model.bin with frugal's writer (which the tests in
    tests/models/test_ct2_writer.py hold byte-identical to CTranslate2's converter)."""
    from frugal.models.ct2_writer import Variable, write_ct2_bytes

    named = {k: Variable(np.asarray(v), str(np.asarray(v).dtype)) for k, v in variables.items()}
    path.write_bytes(write_ct2_bytes(named, aliases, spec=spec, version=version))
    return path


def ct2_variables_from_hf(model: WhisperForConditionalGeneration, int8: bool = False) -> dict:
    """The inverse of frugal's conversion: an HF Whisper as CTranslate2 variables."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    cfg = model.config
    v: dict[str, np.ndarray] = {}

    def lin(dst, *srcs, bias=True, kbias=False):
        w = np.concatenate([sd[f"{s}.weight"] for s in srcs])
        if int8:
            scale = (127.0 / np.maximum(np.abs(w).max(1), 1e-8)).astype(np.float32)
            v[f"{dst}/weight"] = np.round(w * scale[:, None]).astype(np.int8)
            v[f"{dst}/weight_scale"] = scale
        else:
            v[f"{dst}/weight"] = w
        if bias:
            bs = [
                np.zeros(cfg.d_model, np.float32) if s.endswith("k_proj") else sd[f"{s}.bias"]
                for s in srcs
            ]
            v[f"{dst}/bias"] = np.concatenate(bs)

    def ln(dst, src):
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    e, d = "model.encoder", "model.decoder"
    v["encoder/num_heads"] = np.array(cfg.encoder_attention_heads, np.int16)
    v["decoder/num_heads"] = np.array(cfg.decoder_attention_heads, np.int16)
    v["encoder/conv1/weight"], v["encoder/conv1/bias"] = (
        sd[f"{e}.conv1.weight"],
        sd[f"{e}.conv1.bias"],
    )
    v["encoder/conv2/weight"], v["encoder/conv2/bias"] = (
        sd[f"{e}.conv2.weight"],
        sd[f"{e}.conv2.bias"],
    )
    v["encoder/position_encodings/encodings"] = sd[f"{e}.embed_positions.weight"]
    ln("encoder/layer_norm", f"{e}.layer_norm")
    for i in range(cfg.encoder_layers):
        s, t = f"{e}.layers.{i}", f"encoder/layer_{i}"
        lin(
            f"{t}/self_attention/linear_0",
            *(f"{s}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")),
        )
        lin(f"{t}/self_attention/linear_1", f"{s}.self_attn.out_proj")
        ln(f"{t}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
        lin(f"{t}/ffn/linear_0", f"{s}.fc1")
        lin(f"{t}/ffn/linear_1", f"{s}.fc2")
        ln(f"{t}/ffn/layer_norm", f"{s}.final_layer_norm")
    v["decoder/embeddings/weight"] = sd[f"{d}.embed_tokens.weight"]
    v["decoder/position_encodings/encodings"] = sd[f"{d}.embed_positions.weight"]
    ln("decoder/layer_norm", f"{d}.layer_norm")
    for i in range(cfg.decoder_layers):
        s, t = f"{d}.layers.{i}", f"decoder/layer_{i}"
        lin(
            f"{t}/self_attention/linear_0",
            *(f"{s}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")),
        )
        lin(f"{t}/self_attention/linear_1", f"{s}.self_attn.out_proj")
        ln(f"{t}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
        lin(f"{t}/attention/linear_0", f"{s}.encoder_attn.q_proj")
        lin(f"{t}/attention/linear_1", f"{s}.encoder_attn.k_proj", f"{s}.encoder_attn.v_proj")
        lin(f"{t}/attention/linear_2", f"{s}.encoder_attn.out_proj")
        ln(f"{t}/attention/layer_norm", f"{s}.encoder_attn_layer_norm")
        lin(f"{t}/ffn/linear_0", f"{s}.fc1")
        lin(f"{t}/ffn/linear_1", f"{s}.fc2")
        ln(f"{t}/ffn/layer_norm", f"{s}.final_layer_norm")
    return v


def small_whisper_config(vocab_size: int = 51864) -> WhisperConfig:
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=50256,
        bos_token_id=50256,
        eos_token_id=50256,
        decoder_start_token_id=50257,
    )


@pytest.fixture(scope="session")
def tiny_en():
    """The packaged tiny.en as a WhisperASR (loaded once)."""
    return frugal.load("tiny.en")


@pytest.fixture(scope="session")
def builtin():
    return frugal.datasets.builtin_speech(cache=True)


@pytest.fixture(scope="session")
def small_ct2_folder(tmp_path_factory) -> Path:
    """A faster-whisper folder holding a random 2+2-layer Whisper with tiny.en's tokenizer."""
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(small_whisper_config()).eval()
    folder = tmp_path_factory.mktemp("small_ct2")
    src = CHECKPOINTS["tiny.en"].folder()
    for name in ("tokenizer.json", "config.json"):
        (folder / name).write_bytes((src / name).read_bytes())
    write_ct2(
        folder / "model.bin",
        ct2_variables_from_hf(model),
        aliases={"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    torch.save(model.state_dict(), folder / "reference_state.pt")
    return folder
