"""frugal.nn on transformers' Whisper: wrappers, lean decoder composition, save/reload."""

import json

import pytest
import torch
from typer.testing import CliRunner

import frugal
from frugal.cli import app
from frugal.nn import QuantConfig, QuantRule, apply_config
from frugal.quantize import quantize_rtn, save_quantized
from frugal.tasks.asr import DecodeOptions, Transcriber


def test_lean_decoder_uses_quantized_weights(builtin):
    asr = frugal.load("tiny.en")
    audio = [builtin[1].load()]
    dense = Transcriber(asr).transcribe(audio)[0].tokens
    apply_config(asr.model, QuantConfig([QuantRule("model.decoder.layers.*", weight="mxint3")]))
    lean = Transcriber(asr).transcribe(audio)[0].tokens
    gen = Transcriber(asr, DecodeOptions(method="generate")).transcribe(audio)[0].tokens
    assert lean == gen and lean != dense
    apply_config(asr.model, QuantConfig([QuantRule("model.decoder.layers.*", input="fp8_e4m3")]))
    with pytest.raises(ValueError, match="weight formats only"):
        Transcriber(asr).transcribe(audio)


def test_rtn_save_reload_identical(builtin, tmp_path):
    asr = frugal.load("tiny.en")
    rec = quantize_rtn(asr, "mxint4")
    assert rec["bits_per_weight"] == 4.25 and len(rec["modules"]) == 64
    folder = save_quantized(asr, tmp_path / "q")
    again = frugal.load(folder)
    assert again.source["quantization"]["config"] == rec["config"]
    feats = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        assert torch.equal(
            asr.model.model.encoder(feats).last_hidden_state,
            again.model.model.encoder(feats).last_hidden_state,
        )
    audio = [builtin[2].load()]
    assert (
        Transcriber(asr).transcribe(audio)[0].tokens
        == Transcriber(again).transcribe(audio)[0].tokens
    )


def test_cli_quantize_then_eval(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["quantize", "--format", "int8_pc", "--out", str(tmp_path / "q8")])
    assert res.exit_code == 0, res.output
    assert "8.000 bits/weight" in res.stdout
    meta = json.loads((tmp_path / "q8" / "frugal_quant.json").read_text())
    assert meta["quantization"]["method"] == "rtn" and "torch" in meta["versions"]
    res = runner.invoke(
        app, ["eval", "--model", str(tmp_path / "q8"), "--limit", "2", "--warmup", "0"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["quantize", "--format", "mxfp5", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "did you mean" in res.stderr
    res = runner.invoke(app, ["formats"])
    assert res.exit_code == 0 and "mxint4_b128" in res.stdout and "4.0625" in res.stdout
