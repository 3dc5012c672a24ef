"""The report on a synthetic store: files, held-out groups and cost ratios computed right."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frugal.predict.model import FEATURE_SETS
from frugal.predict.report import feature_costs, run_report


def fake_store(models: int = 3):
    rng = np.random.default_rng(0)
    rows, feats = [], {}
    fmts = {"int8_g128": 8.125, "int4_g128": 4.125, "mxint3": 3.25}
    for m in range(models):
        name = f"m{m}"
        curv = float(np.exp(rng.normal()))
        rows.append({"model": name, "format": "fp32", "method": "none", "nll": 1.0,
                     "seconds_quantize": 0.0, "seconds_eval": 5.0})  # fmt: skip
        feats[(name, "")] = {n: (float(rng.normal()), 0.0) for n in FEATURE_SETS["full"]}
        feats[(name, "")]["probe_nll"] = (1.0, 2.0)  # 2 s of per-model features
        feats[(name, "")]["hessian_trace_mean"] = (curv, 8.0)  # + 8 s
        for f, bits in fmts.items():
            feats[(name, f)] = {"bits": (bits, 0.0), "sqnr_db": (6 * bits, 0.5)}
            for meth, gain, secs in (("rtn", 1.0, 5.0), ("gptq", 0.3, 15.0)):
                d = curv * 2.0 ** (-2 * bits) * 100 * gain
                rows.append({"model": name, "format": f, "method": meth, "nll": 1.0 + d,
                             "seconds_quantize": secs - 5.0, "seconds_eval": 5.0,
                             "bits_per_weight": bits, "params": 10**6 * (m + 1)})  # fmt: skip
    return rows, feats


def test_feature_costs_against_real_runs():
    rows, feats = fake_store()
    costs = {c["model"]: c for c in feature_costs(rows, feats)}
    c = costs["m0"]
    cheap = {c["model"]: c for c in feature_costs(rows, feats, FEATURE_SETS["cheap"])}["m0"]
    assert cheap["model_features_s"] == pytest.approx(2.0)  # the Hessian trace is not in it
    assert c["model_features_s"] == pytest.approx(10.0)
    assert c["format_features_s"] == pytest.approx(0.5)
    assert c["real_gptq_s"] == pytest.approx(15.0) and c["real_rtn_s"] == pytest.approx(5.0)
    assert c["queries"] == 6
    assert c["first_query_vs_gptq"] == pytest.approx(10.5 / 15)
    assert c["amortized_vs_gptq"] == pytest.approx((10 / 6 + 0.5 / 2) / 15)


def test_report_files_and_groups(tmp_path):
    rows, feats = fake_store(models=4)
    report = run_report(rows, feats, tmp_path, trees=20)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rows"] == 24 and saved["models"] == ["m0", "m1", "m2", "m3"]
    assert set(saved["evaluations"]) >= {"rf/full/model", "linear/cheap/format"}
    assert set(saved["evaluations"]["gb/full/format"]["groups"]) == {
        "int8_g128", "int4_g128", "mxint3"
    }  # fmt: skip
    assert abs(sum(saved["importances"].values()) - 1) < 1e-6
    assert all((tmp_path / n).is_file() for n in ("summary.md", "dataset.csv"))
    assert len(report["files"]) == 3  # predicted vs measured, importances, ΔNLL vs bits


def test_one_feature_baselines_beside_the_learned_predictors(tmp_path):
    from frugal.predict.model import build_table, evaluate_baseline

    rows, feats = fake_store(models=3)
    table = build_table(rows, feats)
    bits, sqnr = (evaluate_baseline(table, b) for b in ("bits", "rtn_sqnr"))
    assert set(bits["groups"]) == {"m0", "m1", "m2"}
    for g in bits["groups"]:
        # SQNR is 6 dB per bit here: the same ranking; RTN and GPTQ of one format tie, so
        # a format-only ranking orders formats right but cannot order methods
        assert bits["groups"][g]["spearman"] == pytest.approx(sqnr["groups"][g]["spearman"])
        assert 0.8 < bits["groups"][g]["spearman"] < 1.0
    report = run_report(rows, feats, tmp_path, trees=20)
    assert set(report["baselines"]) == {"bits", "rtn_sqnr", "quadratic"}
    assert set(report["rankers"]) == {"cheap", "full"}
    # the fake ΔNLL falls with bits: bits and SQNR lead each model's carriers, negatively
    top = report["carriers"]["m0"][:2]
    assert {n for n, _ in top} == {"bits", "sqnr_db"} and all(r < -0.8 for _, r in top)
    text = (tmp_path / "summary.md").read_text()
    assert "one-feature rankings" in text and "| m2 |" in text.split("one-feature rankings")[1]
