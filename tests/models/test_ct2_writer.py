"""frugal's CTranslate2 writer: byte-identical to CTranslate2's own converter, the inverse of
frugal's reader, exact int8 codes for int8-quantized weights, and faster-whisper runs it."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import frugal
from frugal.cli import app
from frugal.models.ct2_format import read_ct2_model
from frugal.models.ct2_writer import export_ct2
from frugal.models.registry import CHECKPOINTS
from frugal.tasks.asr.quantize import quantize_whisper


@pytest.fixture(scope="module")
def tiny():
    return frugal.load("tiny.en")


def test_int8_export_is_byte_identical_to_ctranslate2s_converter(tiny, tmp_path):
    from ctranslate2.converters import TransformersConverter

    tiny.save(tmp_path / "hf")
    TransformersConverter(str(tmp_path / "hf")).convert(
        str(tmp_path / "ref"), quantization="int8_float32"
    )
    report = export_ct2(tiny, tmp_path / "ours", "int8_float32")
    ours = (tmp_path / "ours" / "model.bin").read_bytes()
    assert ours == (tmp_path / "ref" / "model.bin").read_bytes()
    vocab = [json.loads((tmp_path / d / "vocabulary.json").read_text()) for d in ("ours", "ref")]
    assert vocab[0] == vocab[1]
    assert len(report.requantized) == 47 and not report.exact  # fp16 weights: CT2's rule


def test_float16_export_reproduces_the_packaged_checkpoint(tiny, tmp_path):
    export_ct2(tiny, tmp_path / "f16", "float16")
    ours = read_ct2_model(tmp_path / "f16" / "model.bin")
    ckpt = CHECKPOINTS["tiny.en"]
    ref = read_ct2_model(ckpt.model_parts() or ckpt.folder() / "model.bin")
    # the package predates two alibi flags CTranslate2 now writes (both 0)
    assert set(ours.variables) - set(ref.variables) == {
        "decoder/scale_alibi",
        "decoder/alibi_use_positive_positions",
    }
    for name, value in ref.variables.items():
        assert ours.dtypes[name] == ref.dtypes[name] and np.array_equal(ours[name], value), name
    assert ours.aliases == ref.aliases


def test_int8_codes_carry_over_and_reload(tiny, tmp_path):
    import copy

    asr = copy.deepcopy(tiny)
    quantize_whisper(asr, "int8_pc")
    report = export_ct2(asr, tmp_path / "q", "int8")
    assert len(report.exact) == 44  # every block Linear (fused q/k/v count once)
    assert set(report.requantized) == {
        "encoder/conv1/weight",
        "encoder/conv2/weight",
        "decoder/embeddings/weight",
    }
    ct2 = read_ct2_model(tmp_path / "q" / "model.bin")
    fc1 = asr.model.model.encoder.layers[0].fc1.weight.detach()
    scale = torch.tensor(ct2["encoder/layer_0/ffn/linear_0/weight_scale"])
    codes = torch.tensor(ct2["encoder/layer_0/ffn/linear_0/weight"]).float()
    assert torch.equal(torch.round(fc1 * scale[:, None]), codes)  # the same integers
    back = frugal.load(tmp_path / "q").model.model.encoder.layers[0].fc1.weight
    # q / fl(1/s): the reciprocal's and the division's roundings, 2^-24 each (+ 2^-48)
    assert ((back - fc1).abs() <= 3 * 2.0**-24 * fc1.abs()).all()
    # a float32 export of the same model reloads bit-identical
    export_ct2(asr, tmp_path / "f32", "float32")
    again = frugal.load(tmp_path / "f32")
    for (k, a), (_, b) in zip(
        asr.model.state_dict().items(), again.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k


def test_faster_whisper_runs_the_export_like_the_package(tiny, builtin, tmp_path):
    from faster_whisper import WhisperModel

    export_ct2(tiny, tmp_path / "x", "float16")

    def texts(folder):
        model = WhisperModel(str(folder), device="cpu", compute_type="float32", cpu_threads=2)
        out = []
        for u in builtin.take(3):
            segments, _ = model.transcribe(u.load(), beam_size=1, without_timestamps=True)
            out.append(" ".join(s.text for s in segments))
        return out

    assert texts(tmp_path / "x") == texts(CHECKPOINTS["tiny.en"].folder())


def test_cli_export(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["export", "tiny.en", "--out", str(tmp_path / "c"), "--to", "ct2"])
    assert res.exit_code == 0, res.output
    assert "model.bin" in res.stdout and (tmp_path / "c" / "tokenizer.json").is_file()
    assert (tmp_path / "c" / "preprocessor_config.json").is_file()
    res = runner.invoke(app, ["export", "tiny.en", "--out", str(tmp_path / "h"), "--to", "hf"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "h" / "model.safetensors").is_file()
    res = runner.invoke(app, ["export", "tiny.en", "--out", str(tmp_path / "z"), "--to", "onnx"])
    assert res.exit_code == 2 and "choose ct2, hf or gguf" in res.output
    res = runner.invoke(
        app, ["export", "tiny.en", "--out", str(tmp_path / "z"), "--quantization", "int4"]
    )
    assert res.exit_code == 2 and "int8_float32" in res.output


def test_runtime_folder_joins_split_checkpoints():
    tiny = CHECKPOINTS["tiny.en"]
    assert tiny.runtime_folder() == tiny.folder()
    base = CHECKPOINTS["base"]
    assert base.is_installed(), "base is part of the locked environment (make test installs it)"
    folder = base.runtime_folder()
    try:
        assert (folder / "model.bin").stat().st_size == sum(
            p.stat().st_size for p in base.model_parts()
        )
        assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    finally:
        import shutil

        shutil.rmtree(folder)
