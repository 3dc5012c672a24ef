"""frugal.nn on transformers' Whisper: wrappers, lean decoder composition, save/reload."""

import json

import pytest
import torch
from typer.testing import CliRunner

import frugal
from frugal.cli import app
from frugal.nn import QuantConfig, QuantRule, apply_config
from frugal.tasks.asr import DecodeOptions, Transcriber
from frugal.tasks.asr.quantize import quantize_whisper, save_quantized


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
    rec = quantize_whisper(asr, "mxint4")
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


def test_int8_folder_loads_on_the_int8_kernel_and_packed(builtin, tmp_path):
    from frugal.nn.native import Int8Linear

    asr = frugal.load("tiny.en")
    from frugal.tasks.asr.quantize import quantize_whisper

    rec = quantize_whisper(asr, "int8_pc", vocab_format="int8_pc")
    assert "proj_out" in rec["modules"] and rec["vocab_format"] == "int8_pc"
    folder = save_quantized(asr, tmp_path / "q8")
    size = (folder / "model.safetensors").stat().st_size
    weights = rec["quantized_weights"]
    assert weights * 1.0 < size < weights * 1.02 + 8 * 2**20  # int8 codes + fp16 rest
    native = frugal.load(folder)
    enc = native.model.model.encoder.layers[0].fc1
    assert isinstance(enc, Int8Linear)
    assert type(native.model.model.decoder.layers[0].fc1) is torch.nn.Linear
    kernels = native.source["kernels"]
    assert sum(k != "simulated" for k in kernels.values()) == 24  # the encoder's Linears
    simulated = frugal.load(folder, kernels="simulated")
    assert set(simulated.source["kernels"].values()) == {"simulated"}
    for name, p in asr.model.state_dict().items():  # every value back exactly
        assert torch.equal(simulated.model.state_dict()[name], p), name
    assert torch.equal(enc.weight, asr.model.model.encoder.layers[0].fc1.weight)
    audio = [u.load() for u in builtin.take(3)]
    from frugal.tasks.asr.metrics import wer

    native_texts = [t.text for t in Transcriber(native).transcribe(audio)]
    simulated_texts = [t.text for t in Transcriber(simulated).transcribe(audio)]
    assert wer(simulated_texts, native_texts).wer <= 10  # int8 inputs change little
    with pytest.raises(ValueError, match="native or simulated"):
        frugal.load(folder, kernels="fast")


def test_cli_quantize_reports_storage_and_kernels(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["quantize", "--format", "int4_g128", "--vocab-format", "nf4_b32", "--out",
         str(tmp_path / "q4")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "4.125 bits per quantized weight as stored" not in res.stdout  # vocab is nf4_b32
    assert "MiB (model.safetensors)" in res.stdout and "simulated" in res.stdout
    res = runner.invoke(app, ["formats"])
    assert "torch._int_mm" in res.stdout and "packed" in res.stdout
    res = runner.invoke(
        app, ["eval", "--model", str(tmp_path / "q4"), "--limit", "1", "--kernels", "bad"]
    )
    assert res.exit_code == 2 and "native or simulated" in res.output


def test_a_native_model_saves_again(tmp_path):
    asr = frugal.load("tiny.en")
    quantize_whisper(asr, "int8_pc")
    native = frugal.load(save_quantized(asr, tmp_path / "a"))
    again = frugal.load(save_quantized(native, tmp_path / "b"), kernels="simulated")
    for name, p in asr.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], p), name
