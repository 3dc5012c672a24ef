"""`frugal search`: runs, resumes by name, refuses a changed setup, writes its report."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from frugal.cli import app

runner = CliRunner()


def test_search_cli_runs_resumes_and_reports(tmp_path):
    args = ["search", "--problem", "mixed-precision", "--algorithm", "nsga2", "--batch", "10",
            "--name", "r", "--dir", str(tmp_path)]  # fmt: skip
    res = runner.invoke(app, [*args, "--budget", "30"])
    assert res.exit_code == 0, res.output
    assert "30 measurements (0 failed)" in res.stdout
    res = runner.invoke(app, [*args, "--budget", "50"])  # resumes: 20 more
    assert res.exit_code == 0 and "50 measurements" in res.stdout
    with open(tmp_path / "r" / "measurements.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50 and {"b0", "error", "mbit", "pareto"} <= set(rows[0])
    assert any(r["pareto"] == "1" for r in rows)
    assert (tmp_path / "r" / "pareto.png").is_file() and (
        tmp_path / "r" / "hypervolume.png"
    ).is_file()

    res = runner.invoke(app, [*args[:4], "random", *args[5:], "--budget", "60"])
    assert res.exit_code == 2 and "pick another --name" in res.output
    other = [*args[:4], "random", *args[5:8], "rand", *args[9:]]
    res = runner.invoke(app, [*other, "--budget", "20"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search-report", "--dir", str(tmp_path)])
    assert res.exit_code == 0 and (tmp_path / "compare_mixed-precision.png").is_file()
    res = runner.invoke(app, ["search-report", "--dir", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no stored search" in res.output
    res = runner.invoke(app, ["search", "--problem", "nope", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "unknown problem" in res.output


def test_search_cli_on_an_unreachable_ray_cluster_is_a_one_line_error(tmp_path):
    res = runner.invoke(app, ["search", "--problem", "zdt1", "--budget", "5", "--dir",
                              str(tmp_path), "--ray-address", "ray://127.0.0.1:9"])  # fmt: skip
    assert res.exit_code == 2 and "cannot reach Ray" in res.output


def test_search_cli_with_limits_ehvi_and_export_to_optuna(tmp_path):

    import optuna  # the locked environment has it: a missing install fails, never skips

    args = ["search", "--problem", "mixed-precision", "--predictor", "gp", "--selection", "ehvi",
            "--batch", "8", "--generations", "10", "--limit", "mbit=100", "--name", "c",
            "--dir", str(tmp_path)]  # fmt: skip
    res = runner.invoke(app, [*args, "--budget", "24"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "c" / "measurements.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24
    res = runner.invoke(app, [*args[:-6], "--limit", "mbit=90", *args[-4:], "--budget", "30"])
    assert res.exit_code == 2 and "pick another --name" in res.output  # limits are the setup
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    res = runner.invoke(app, ["search-export", "c", "--storage", storage, "--dir", str(tmp_path)])
    assert res.exit_code == 0 and "24 trials" in res.output, res.output
    study = optuna.load_study(study_name="c", storage=storage)
    feasible = [t.system_attrs["constraints"][0] <= 0 for t in study.trials]
    assert feasible == [float(r["mbit"]) <= 100 for r in rows]
    assert study.user_attrs["frugal_config"]["limits"] == {"mbit": 100.0}
    res = runner.invoke(app, ["search-export", "c", "--storage", storage, "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(app, ["search-export", "nope", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "no search 'nope'" in res.output


def test_search_cli_bad_limits_and_halving_are_one_line_errors(tmp_path):
    base = ["search", "--problem", "zdt1", "--budget", "5", "--dir", str(tmp_path)]
    res = runner.invoke(app, [*base, "--limit", "f3=1"])
    assert res.exit_code == 2 and "unknown objective" in res.output
    res = runner.invoke(app, [*base, "--limit", "f1"])
    assert res.exit_code == 2 and "expected objective=number" in res.output
    res = runner.invoke(app, [*base, "--halving", "3", "--name", "h"])
    assert res.exit_code == 2 and "no fidelities" in res.output
    res = runner.invoke(app, [*base[:4], "5.5", *base[5:], "--name", "f"])
    assert res.exit_code == 2 and "whole number" in res.output
