"""Across model size: the noise floor from split halves, the precision law and the
predictor trained on smaller models, on synthetic stores with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from frugal.predict.model import FEATURE_SETS, build_table
from frugal.predict.report import merge_stores, run_report
from frugal.predict.scaling import PrecisionLaw, across_size, noise_floor

FORMATS = {"int8_g128": 8.125, "int6_g128": 6.125, "int4_g128": 4.125, "int3_g128": 3.125,
           "mxint4": 4.25, "mxint3": 3.25}  # fmt: skip
LAW = {"beta": 1.8, "alpha": 0.6, "rtn": 4.0, "gptq": 3.0}  # ΔNLL 0.002-2 nats


def law_delta(bits: float, params: float, method: str) -> float:
    return (
        math.exp(LAW[method] - LAW["beta"] * bits * math.log(2)) * (params / 1e8) ** -LAW["alpha"]
    )


def store(sizes: dict[str, float], noise: float = 0.0, seed: int = 0):
    """Rows whose ΔNLL follows LAW exactly; split halves off by ±noise (known SE)."""
    rng = np.random.default_rng(seed)
    rows, feats = [], {}
    for name, params in sizes.items():
        rows.append({"model": name, "format": "fp32", "method": "none", "nll": 2.0,
                     "params": params, "bits_per_weight": 32.0, "seconds_quantize": 0.0,
                     "seconds_eval": 1.0, "record": {"nll_halves": [2.1, 1.9]}})  # fmt: skip
        feats[(name, "")] = {n: (float(rng.normal()), 0.0) for n in FEATURE_SETS["full"]}
        feats[(name, "")]["log10_params"] = (math.log10(params), 0.0)
        for fmt, bits in FORMATS.items():
            feats[(name, fmt)] = {"bits": (bits, 0.0), "sqnr_db": (6 * bits, 0.1)}
            for meth in ("rtn", "gptq"):
                d = law_delta(bits, params, meth)
                e = noise * (1 if rng.random() < 0.5 else -1)
                rows.append({
                    "model": name, "format": fmt, "method": meth, "nll": 2.0 + d,
                    "params": params, "bits_per_weight": bits, "seconds_quantize": 1.0,
                    "seconds_eval": 1.0, "record": {"nll_halves": [2.1 + d + e, 1.9 + d - e]},
                })  # fmt: skip
    return rows, feats


def test_the_law_is_recovered_from_rows_that_follow_it():
    rows, _ = store({"a": 1.35e8, "b": 2.7e8, "c": 5e8})
    q = [r for r in rows if r["method"] != "none"]
    law = PrecisionLaw.fit([r["bits_per_weight"] for r in q], [r["params"] for r in q],
                           [r["method"] for r in q], [r["nll"] - 2.0 for r in q],
                           floor=0.0)  # fmt: skip
    assert law.beta == pytest.approx(LAW["beta"], rel=1e-9)
    assert law.alpha == pytest.approx(LAW["alpha"], rel=1e-9)
    assert law.intercepts == pytest.approx({"gptq": LAW["gptq"], "rtn": LAW["rtn"]}, rel=1e-9)
    assert law.predict([4.0], [1.5e9], ["rtn"])[0] == pytest.approx(law_delta(4.0, 1.5e9, "rtn"))
    with pytest.raises(ValueError, match="too few rows"):
        PrecisionLaw.fit([4.0], [1e8], ["rtn"], [0.5])


def test_noise_floor_reads_the_split_halves():
    rows, _ = store({"a": 1e8, "b": 2e8}, noise=0.01)
    nf = noise_floor(rows)
    assert set(nf) == {"a", "b"}
    # ΔA − ΔB = ±2·noise on every row: rms/2 = noise exactly
    assert nf["a"]["se"] == pytest.approx(0.01) and nf["a"]["median_abs_diff"] == pytest.approx(
        0.02
    )
    assert nf["a"]["rows"] == 2 * len(FORMATS)
    assert nf["a"]["split_half_spearman"] > 0.9  # ±0.01 barely reorders rows 0.001-3 nats apart
    rows = [r for r in rows if r["model"] == "a" and r["method"] == "none"] + [
        {k: v for k, v in r.items() if k != "record"} for r in rows if r["method"] != "none"
    ]
    assert noise_floor(rows) == {}  # rows stored before halves were recorded: no floor


def test_across_size_trains_only_on_smaller_models_and_fits_the_law_on_the_named_ones():
    rows, feats = store({"s1": 1.35e8, "s2": 2.7e8, "s3": 5e8, "big": 1.5e9})
    table = build_table(rows, feats)
    a = across_size(table, rows, "big", ["s1", "s2", "s3", "big"], trees=20)
    assert a["train_models"] == ["s1", "s2", "s3"] and a["law_models"] == ["s1", "s2", "s3"]
    assert len(a["rows"]) == 2 * len(FORMATS)
    # the rows follow the law: it extrapolates in size exactly
    assert a["law"]["r2"] == pytest.approx(1.0, abs=1e-9)
    assert a["law"]["spearman"] == pytest.approx(1.0)
    assert math.isfinite(a["predictor"]["spearman"])
    b = across_size(table, rows, "big", ["s1", "s2"], max_params=2.7e8, trees=20)
    assert b["train_models"] == ["s1", "s2"]
    with pytest.raises(ValueError, match="no model with at most"):
        across_size(table, rows, "s1", ["s2"], trees=20)


def test_report_pools_stores_and_reports_across_size(tmp_path):
    llm = store({"s1": 1.35e8, "s2": 2.7e8, "big": 1.5e9}, noise=0.002)
    other = store({"s1": 1.35e8, "z1": 1e7, "z2": 2e7}, seed=1)
    rows, feats, first = merge_stores([llm, other])
    assert first == ["big", "s1", "s2"]
    assert sum(r["model"] == "s1" for r in rows) == 1 + 2 * len(FORMATS)  # the first store's
    report = run_report(rows, feats, tmp_path, trees=20, target="big", law_models=first)
    assert report["across_size"]["train_models"] == ["s1", "s2", "z1", "z2"]
    assert report["across_size"]["law_models"] == ["s1", "s2"]
    text = (tmp_path / "summary.md").read_text()
    assert "Across size: predicting big" in text and "Noise floor" in text
    assert (tmp_path / "delta_vs_bits.png").is_file()
