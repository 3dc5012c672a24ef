"""Whisper as a quantization task: batches, split, GPTQ/QAT on real layers, save/reload, CLI
and the PTQ-vs-QAT study on a tiny budget."""

import copy
import json

import pytest
import torch
from typer.testing import CliRunner

import frugal
from frugal.cli import app
from frugal.quantize import input_hessians, local_objective, mean_nll
from frugal.tasks.asr.calibration import split_calibration, teacher_batches
from frugal.tasks.asr.metrics import token_nll
from frugal.tasks.asr.quantize import quantize_whisper, save_quantized


def test_split_is_seeded_and_disjoint(builtin):
    a, b = split_calibration(builtin, 20, seed=1)
    assert len(a) == 20 and len(b) == len(builtin) - 20
    assert not {u.id for u in a} & {u.id for u in b}
    assert [u.id for u in a] == [u.id for u in split_calibration(builtin, 20, seed=1)[0]]
    assert [u.id for u in a] != [u.id for u in split_calibration(builtin, 20, seed=2)[0]]
    with pytest.raises(ValueError, match="more than"):
        split_calibration(builtin, len(builtin), 0)


def test_teacher_batches_score_what_evaluate_scores(tiny_en, builtin):
    utts = [builtin[i] for i in (0, 5, 9)]
    batches = teacher_batches(tiny_en, utts, batch_size=2)
    assert [b.examples for b in batches] == [2, 1]
    with torch.inference_mode():
        feats = torch.cat([b.inputs["input_features"] for b in batches])
        enc = tiny_en.model.model.encoder(feats).last_hidden_state
    prompt = tiny_en.prompt_ids()
    ref = token_nll(tiny_en, enc, [u.text for u in utts], [prompt] * 3)
    per_token = sum(n for n, _ in ref) / sum(c for _, c in ref)
    assert sum(b.tokens for b in batches) == sum(c for _, c in ref)
    assert mean_nll(tiny_en.model, batches) == pytest.approx(per_token, rel=1e-4)


def test_gptq_on_whisper_lowers_local_error_and_reloads(builtin, tmp_path, small_ct2_folder):
    asr = frugal.load(str(small_ct2_folder))  # a random 2+2-layer Whisper: GPTQ's arithmetic
    calib = [builtin[i] for i in (3, 4)]
    batches = teacher_batches(asr, calib, 2)
    names = [n for n, m in asr.model.named_modules() if isinstance(m, torch.nn.Linear)]
    names = [n for n in names if ".layers." in n]
    ref = {n: asr.model.get_submodule(n).weight.detach().clone() for n in names}
    hess = input_hessians(asr.model, batches, names)
    rtn = copy.deepcopy(asr)
    quantize_whisper(rtn, "mxint4", "rtn")
    rec = quantize_whisper(asr, "mxint4", "gptq", calib)
    assert rec["calibration_examples"] == 2 and len(rec["modules"]) == len(names) == 32
    assert local_objective(asr.model, ref, hess) < 0.5 * local_objective(rtn.model, ref, hess)
    again = frugal.load(save_quantized(asr, tmp_path / "g"))
    assert again.source["quantization"]["method"] == "gptq"
    assert again.source["quantization"]["calibration_ids"] == [u.id for u in calib]
    feats = batches[0].inputs["input_features"]
    with torch.inference_mode():
        assert torch.equal(
            asr.model(**batches[0].inputs).logits, again.model(**batches[0].inputs).logits
        )
        assert feats.shape == (2, 80, 3000)


def test_cli_quantize_methods(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["quantize", "-f", "mxint4", "--method", "qat", "--budget", "2", "--steps", "2",
         "--out", str(tmp_path / "q")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "qat:" in res.stdout and "2 calibration utterances" in res.stdout
    meta = json.loads((tmp_path / "q" / "frugal_quant.json").read_text())
    assert meta["quantization"]["qat"]["steps"] == 2
    res = runner.invoke(app, ["quantize", "-f", "mxint4", "--method", "gptq", "--budget", "999",
                              "--out", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2 and "budget of 999" in res.output
    res = runner.invoke(app, ["quantize", "-f", "bf16_sr", "--method", "gptq",
                              "--out", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2 and "deterministic" in res.output


@pytest.mark.slow
def test_study_runs_resumes_and_reports(tmp_path, monkeypatch, small_ct2_folder):
    """The whole study on a random 2+2-layer Whisper with tiny.en's tokenizer (the study's
    arithmetic does not depend on the model's size; tiny.en runs in the voice-split test)."""
    from frugal.quantize import QATConfig
    from frugal.study import ptq_vs_qat as study

    cfg = study.StudyConfig(
        model=str(small_ct2_folder), formats=["mxint3"], budget=2, heldout=2, track_examples=1,
        batch_size=2, qat=QATConfig(steps=2), record_every=1,
    )  # fmt: skip
    rows = study.run_study(cfg, tmp_path, log=lambda m: None)
    keys = [(r["format"], r["method"]) for r in rows]
    assert keys == [("fp32", "none"), ("fp16", "qat"), ("mxint3", "rtn"), ("mxint3", "gptq"),
                    ("mxint3", "qat")]  # fmt: skip
    by = {k: r for k, r in zip(keys, rows, strict=True)}
    assert by["mxint3", "gptq"]["local"] < by["mxint3", "rtn"]["local"]
    assert len(by["mxint3", "gptq"]["trajectory"]) == 4  # one point per block (2 + 2)
    assert [p["step"] for p in by["mxint3", "qat"]["trajectory"]] == [0, 1, 2]
    assert [p["alpha"] for p in by["mxint3", "gptq"]["line"]] == list(study.LINE_POINTS)
    assert all(r["calibration_examples"] == 2 for r in rows[2:] if r["method"] != "rtn")
    paths = study.write_report(rows, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths["pngs"])
    assert "| mxint3 | gptq |" in paths["summary"].read_text()

    def boom(*a, **k):
        raise AssertionError("resume must not re-measure")

    monkeypatch.setattr(study, "quantize", boom)
    assert study.run_study(cfg, tmp_path, log=lambda m: None) == rows
    other = study.StudyConfig(model=str(small_ct2_folder), formats=["mxint3"], budget=3, heldout=2)
    with pytest.raises(ValueError, match=r"PTQ-vs-QAT study made with .*use another --out"):
        study.run_study(other, tmp_path, log=lambda m: None)


def test_cli_study_rtn_only(tmp_path, small_ct2_folder):
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["study", "ptq-vs-qat", "--model", str(small_ct2_folder), "--formats", "mxint3,int4_g128",
         "--methods", "rtn", "--budget", "2", "--heldout", "2", "--no-wer", "--out", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "| mxint3 | rtn |" in res.stdout and "| int4_g128 | rtn |" in res.stdout
    assert (tmp_path / "local_vs_global.png").is_file()
    res = runner.invoke(app, ["study", "ptq-vs-qat", "--formats", "mxint9", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "mxint9" in res.output
