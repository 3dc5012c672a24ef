"""GPT-2-style models (transformers Conv1D projections) through loading, RTN, GPTQ, QAT,
saving and the feature code."""

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from typer.testing import CliRunner

from frugal.cli import app
from frugal.nn import conv1d_to_linear, matching_linears
from frugal.predict.features import FeatureConfig, format_features, model_features
from frugal.tasks.lm import block_pattern, load_causal_lm
from frugal.tasks.lm_zoo import byte_tokenizer
from frugal.tasks.subjects import SubjectConfig, load_subject
from tests.lm_helpers import TEXT


def gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=256, n_embd=48, n_layer=2, n_head=4, n_positions=128)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture
def gpt2_folder(tmp_path):
    folder = tmp_path / "gpt2"
    gpt2().save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    (tmp_path / "t.txt").write_text(TEXT)
    return folder


def test_conv1d_swap_gives_the_same_function_in_float64():
    ref = gpt2().double()
    ids = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(ids).logits
        names = conv1d_to_linear(ref)
        got = ref(ids).logits
    assert len(names) == 2 * 4  # c_attn, c_proj (attention), c_fc, c_proj (MLP) per block
    # float64: the transposed product differs only by summation order (~1e-15 relative)
    assert torch.allclose(got, want, rtol=0, atol=1e-10)


def test_gpt2_folder_loads_with_linears_and_finds_its_blocks(gpt2_folder):
    lm = load_causal_lm(gpt2_folder)
    assert len(lm.conv1d) == 8
    assert block_pattern(lm.model) == "transformer.h.*"
    assert len(matching_linears(lm.model, block_pattern(lm.model))) == 8


@pytest.mark.parametrize("method", ["rtn", "gptq", "qat"])
def test_cli_quantizes_gpt2_and_saves_a_plain_gpt2(gpt2_folder, tmp_path, method):
    out = tmp_path / f"q-{method}"
    args = ["lm", "quantize", "-m", str(gpt2_folder), "-t", str(tmp_path / "t.txt"),
            "-f", "int4_g128", "--method", method, "--budget", "4", "--length", "32",
            "--steps", "2", "-o", str(out)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "frugal_quant.json").read_text())
    assert len(meta["quantization"]["modules"]) == 8
    # transformers reads the result as an ordinary GPT-2 (Conv1D weights, (in, out))
    plain = GPT2LMHeadModel.from_pretrained(out)
    c_fc = plain.transformer.h[0].mlp.c_fc
    assert type(c_fc).__name__ == "Conv1D" and c_fc.weight.shape == (48, 192)
    # its weights lie on a 4-bit grid along the input dimension (one group: rows of W.T)
    w = c_fc.weight.detach().T
    assert (
        max(len(row.unique()) for row in w)
        <= 16
        < len(gpt2().transformer.h[0].mlp.c_fc.weight.T[0].unique())
    )
    again = load_causal_lm(out)
    assert torch.equal(again.model.transformer.h[0].mlp.c_fc.weight, w)


def test_features_and_subject_of_a_gpt2_folder(gpt2_folder, tmp_path):
    cfg = SubjectConfig(calibration=4, heldout_tokens=512, probe=2, context=32,
                        text=(str(tmp_path / "t.txt"),))  # fmt: skip
    subject = load_subject(str(gpt2_folder), cfg)
    assert subject.family == "gpt2" and subject.stacks == ("transformer.h",)
    fcfg = FeatureConfig(hutchinson_samples=1)
    feats, state = model_features(subject, fcfg)
    f4 = format_features(subject, "int4_g128", state, fcfg)
    f8 = format_features(subject, "int8_g128", state, fcfg)
    assert f8["sqnr_db"].value > f4["sqnr_db"].value + 15  # ~6 dB per bit
    assert feats["probe_nll"].value > 0


def test_cli_perplexity_on_a_named_text_source(gpt2_folder):
    res = CliRunner().invoke(app, ["lm", "perplexity", "-m", str(gpt2_folder), "-t", "sentences",
                                   "--context", "64", "--stride", "64"])  # fmt: skip
    assert res.exit_code == 0, res.output
    n = len(text_bytes("sentences"))
    assert f"{n:,} tokens" in res.stdout


def text_bytes(name):
    from frugal.data.text import text_corpus

    return text_corpus(name).encode()
