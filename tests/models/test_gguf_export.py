"""frugal's Q4_0 / Q8_0 weights written as GGUF: the `gguf` package reads back exactly
frugal's values, and transformers' GGUF loader gives back frugal's model bit for bit."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from frugal.cli import app
from frugal.models.gguf_export import export_gguf
from frugal.models.gguf_file import GGUFError, GGUFFile, type_name
from frugal.models.gguf_lm import build_causal_lm
from frugal.models.gguf_writer import gguf_tensors
from frugal.quantize import make_recipe, quantize
from frugal.tasks.lm import calibration_windows
from tests.gguf_helpers import VOCAB, write_tiny_gguf


def _quantized(kind, tmp_path, method, fmt):
    """(model quantized in place, its record, the GGUF it came from)."""
    model, source = write_tiny_gguf(tmp_path / f"{kind}.gguf", kind, tied=kind != "qwen2")
    tokens = torch.randint(0, VOCAB, (2000,), generator=torch.Generator().manual_seed(0))
    batches = calibration_windows(tokens, 8, 64, seed=0) if method == "gptq" else []
    record = quantize(model, make_recipe(method, fmt, "model.layers.*"), batches)
    return model, record, source


@pytest.mark.parametrize(
    ("kind", "method", "fmt"),
    [("llama", "gptq", "q4_0"), ("llama", "rtn", "q8_0"), ("qwen2", "gptq", "q8_0"),
     ("gemma3", "rtn", "q4_0"), ("llama", "gptq", "int8_g32")],
)  # fmt: skip
def test_export_reads_back_exactly(kind, method, fmt, tmp_path):
    import gguf
    import transformers

    model, record, source = _quantized(kind, tmp_path, method, fmt)
    out = tmp_path / "out" / "q.gguf"
    report = export_gguf(model, out, record, source)
    want = "Q4_0" if fmt == "q4_0" else "Q8_0"
    assert report["exact"] == len(record["modules"]) > 0
    assert report["tensors"][want] == len(record["modules"])
    # 1. the gguf package decodes every written tensor to frugal's values (llama.cpp layout)
    layout = gguf_tensors(model)
    for t in gguf.GGUFReader(str(out)).tensors:
        values = gguf.dequantize(t.data, t.tensor_type).reshape(layout[t.name][1].shape)
        assert np.array_equal(values, layout[t.name][1]), t.name
        if layout[t.name][0].removesuffix(".weight") in record["modules"]:
            assert t.tensor_type.name == want
    # 2. transformers' GGUF loader and frugal's give back the quantized model bit for bit
    theirs = transformers.AutoModelForCausalLM.from_pretrained(
        str(out.parent), gguf_file=out.name, dtype=torch.float32
    ).state_dict()
    ours = build_causal_lm(out)[0].state_dict()
    for name, w in model.state_dict().items():
        if kind == "gemma3" and name.endswith("norm.weight"):
            continue  # stored as 1 + w: one float32 rounding (test_gguf_lm bounds it)
        assert torch.equal(theirs[name], w) and torch.equal(ours[name], w), name
    # the tokenizer and hyper-parameters came from the source file
    with GGUFFile(out) as f, GGUFFile(source) as s:
        assert f.metadata["tokenizer.ggml.tokens"] == s.metadata["tokenizer.ggml.tokens"]
        assert (
            f.value_types["tokenizer.ggml.token_type"] == s.value_types["tokenizer.ggml.token_type"]
        )


def test_formats_without_a_gguf_type_and_bad_options_are_refused(tmp_path):
    model, record, source = _quantized("llama", tmp_path, "rtn", "int4_g128")
    with pytest.raises(GGUFError, match="no GGUF block type holds exactly"):
        export_gguf(model, tmp_path / "x.gguf", record, source)
    with pytest.raises(ValueError, match="--rest 'q4'"):
        export_gguf(model, tmp_path / "x.gguf", None, source, rest="q4")
    report = export_gguf(model, tmp_path / "f16.gguf", None, source, rest="f16")
    assert set(report["tensors"]) == {"F16", "F32"}  # matrices F16, vectors F32


def test_cli_exports_a_quantized_lm_folder(tmp_path):
    from tests.lm_helpers import TEXT

    _, source = write_tiny_gguf(tmp_path / "tiny.gguf")
    folder = tmp_path / "lm"
    model = build_causal_lm(source)[0]
    from frugal.models.gguf_lm import gguf_tokenizer

    model.save_pretrained(folder)
    gguf_tokenizer(source).save_pretrained(folder)
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    runner = CliRunner()
    args = ["lm", "quantize", "-m", str(folder), "-t", str(text), "-o", str(tmp_path / "q")]
    res = runner.invoke(app, [*args, "-f", "q4_0", "--budget", "4", "--length", "32"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["export", str(tmp_path / "q"), "--to", "gguf", "-o", str(tmp_path / "e")]
    )
    assert res.exit_code == 2 and "give --source FILE.gguf" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "q"), "--to", "gguf", "-o",
                              str(tmp_path / "e"), "--source", str(source)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "encoded exactly" in res.output and "Q4_0 x14" in res.output
    with GGUFFile(tmp_path / "e" / "q.gguf") as f:
        assert type_name(f.tensors["blk.0.attn_q.weight"].ggml_type) == "Q4_0"
