"""`frugal study collect` → store → report → `frugal predict`, on small LMs built here."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from frugal.cli import app
from frugal.study.collect import CollectConfig, collect
from frugal.study.store import StudyDB
from frugal.tasks.subjects import SubjectConfig
from tests.lm_helpers import save_tiny_lm

runner = CliRunner()
SMALL = SubjectConfig(calibration=8, heldout_tokens=1024, probe=2, context=64)
FORMATS = ("int4_g128", "mxint3")


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    root = tmp_path_factory.mktemp("lms")
    return [str(save_tiny_lm(root / f"lm{seed}", seed=seed)) for seed in (0, 1, 2)]


def config(models, formats=FORMATS, **kw) -> CollectConfig:
    return CollectConfig(models=tuple(models), formats=formats, subject=SMALL, **kw)


def test_collect_stores_rows_and_features_and_resumes(lms, tmp_path):
    db_path = tmp_path / "s.sqlite"
    first = collect(config(lms[:1], FORMATS[:1]), db_path, log=lambda m: None)
    assert first["failed"] == 0
    with StudyDB(db_path) as db:
        rows = db.measurements()
        created = dict(db.con.execute("SELECT method, created FROM measurements").fetchall())
        feats = db.features()
    assert {(r["format"], r["method"]) for r in rows} == {
        ("fp32", "none"), ("int4_g128", "rtn"), ("int4_g128", "gptq")
    }  # fmt: skip
    assert all(r["nll"] > 0 and r["wer"] is None for r in rows)
    assert {"probe_nll", "hessian_trace_mean", "kurtosis"} <= set(feats[("lm0", "")])
    assert {"sqnr_db", "noise_rise_a1", "quadratic_rise"} <= set(feats[("lm0", "int4_g128")])

    again = collect(config(lms[:1], FORMATS[:1]), db_path, log=lambda m: None)
    assert again["jobs"] == 0  # nothing re-measured
    more = collect(config(lms[:1]), db_path, log=lambda m: None)
    assert more["jobs"] == 3  # the added format's features + 2 methods
    with StudyDB(db_path) as db:
        assert len(db.measurements()) == 5
        assert dict(db.con.execute(
            "SELECT method, created FROM measurements WHERE format='int4_g128'"
        ).fetchall()) == {k: v for k, v in created.items() if k != "none"}  # fmt: skip
        assert set(db.get_meta("config")["formats"]) == set(FORMATS)


def test_collect_refuses_other_data_settings_and_records_failures(lms, tmp_path):
    db_path = tmp_path / "s.sqlite"
    collect(config(lms[:1], FORMATS[:1], with_features=False), db_path, log=lambda m: None)
    other = CollectConfig(
        models=(lms[0],), formats=FORMATS[:1], subject=SubjectConfig(calibration=4),
        with_features=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"made with subject=.*use the same data"):
        collect(other, db_path, log=lambda m: None)
    logs = []
    bad = config([str(tmp_path / "nowhere")], FORMATS[:1], with_features=False)
    counts = collect(bad, db_path, log=logs.append)
    assert counts["failed"] == 1 and any("skipping" in m for m in logs)
    with StudyDB(db_path) as db:
        failed = [r for r in db.measurements(include_errors=True) if r["error"]]
    assert len(failed) == 1 and "no such model folder" in failed[0]["error"]


@pytest.mark.slow
def test_parallel_collection_equals_serial(lms, tmp_path):
    """Two local worker processes, and two Ray actors, store the rows one process would."""
    import ray  # noqa: F401  (in the locked environment: a missing install fails here)

    serial = tmp_path / "serial.sqlite"
    collect(config(lms[:2], FORMATS[:1], with_features=False), serial, log=lambda m: None)
    with StudyDB(serial) as a:
        ra = a.measurements()
    for where, ray_address in (("processes", None), ("ray", "local")):
        parallel = tmp_path / f"{where}.sqlite"
        collect(
            config(lms[:2], FORMATS[:1], with_features=False, workers=2, threads=1),
            parallel, log=lambda m: None, ray_address=ray_address,
        )  # fmt: skip
        with StudyDB(parallel) as b:
            rb = b.measurements()
        assert [(r["model"], r["format"], r["method"]) for r in ra] == [
            (r["model"], r["format"], r["method"]) for r in rb
        ], where
        for x, y in zip(ra, rb, strict=True):
            # other processes, other thread counts: float32 NLLs of a 2-layer LM over a few
            # hundred tokens agree far inside 1e-5 relative (fp32 sums err ~1e-7 per term)
            assert x["nll"] == pytest.approx(y["nll"], rel=1e-5), where


def test_cli_collect_report_and_predict(lms, tmp_path):
    store = tmp_path / "study.sqlite"
    res = runner.invoke(app, [
        "study", "collect", "--models", ",".join(lms), "--formats", ",".join(FORMATS),
        "--store", str(store), "--calibration", "8", "--heldout-tokens", "1024",
        "--probe", "2",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "rows stored, 0 failed" in res.stdout
    with sqlite3.connect(store) as con:
        assert con.execute("SELECT count(*) FROM measurements").fetchone()[0] == 3 * 5

    report_dir = tmp_path / "report"
    res = runner.invoke(
        app,
        [
            "study",
            "predict-report",
            "--store",
            str(store),
            "--out",
            str(report_dir),
            "--trees",
            "30",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((report_dir / "report.json").read_text())
    assert report["rows"] == 12 and len(report["models"]) == 3
    assert set(report["evaluations"]["rf/full/model"]["groups"]) == {"lm0", "lm1", "lm2"}
    assert (report_dir / "predicted_vs_measured.png").stat().st_size > 1000
    assert "Leave-one-model-out" in (report_dir / "summary.md").read_text()
    lines = (report_dir / "dataset.csv").read_text().splitlines()
    assert len(lines) == 13 and lines[0].startswith("model,format,method,fp_nll,delta_nll")

    res = runner.invoke(app, [
        "predict", "--model", lms[2], "--format", "mxint3", "--method", "gptq",
        "--store", str(store), "--kind", "linear", "--measure",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "predicted ΔNLL" in res.stdout and "measured: ΔNLL" in res.stdout
    assert "on 8 rows of 2 other models" in res.output  # lm2 held out of training

    res = runner.invoke(app, ["predict", "--model", lms[0], "--format", "int9x"])
    assert res.exit_code == 2 and "int9x" in res.output
    res = runner.invoke(app, ["predict", "--store", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2 and "no such study store" in res.output
