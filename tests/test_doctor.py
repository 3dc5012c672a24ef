"""`frugal --version` and `frugal doctor`: what a bug report needs."""

import json

import torch
from typer.testing import CliRunner

import frugal
from frugal.cli import app
from frugal.doctor import blas_of, collect, version_of


def test_version_prints_and_exits():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"frugal {frugal.__version__}"


def test_doctor_json_has_every_section(monkeypatch):
    monkeypatch.delenv("FRUGAL_INT8_GEMM", raising=False)
    monkeypatch.delenv("FRUGAL_WIDE_GEMM", raising=False)
    res = CliRunner().invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert set(report) == {"frugal", "packages", "cpu", "threads", "kernels", "models", "extras"}
    assert report["packages"]["torch"] == torch.__version__
    assert (
        report["cpu"]["torch kernels (ATen capability)"] == torch.backends.cpu.get_cpu_capability()
    )
    assert report["threads"]["torch intra-op"] == str(torch.get_num_threads())
    assert report["models"]["tiny.en"] == "yes"
    # the locked environment has every extra; the kernels work on every CPU of this kind
    assert all(v != "not installed" for v in report["extras"].values()), report["extras"]
    assert report["kernels"]["int8 GEMM (torch._int_mm)"] == "yes, exact"
    assert report["kernels"]["int8 products run on"].startswith(
        ("torch._int_mm (auto; 64x384x1536", "exact fp32 GEMMs (auto; 64x384x1536")
    )
    assert report["kernels"]["vocabulary projection runs as"].startswith(
        ("F.linear(h, w) (auto; 2 x 51864", "(w @ hᵀ)ᵀ (auto; 2 x 51864")
    )
    assert report["kernels"]["fused format kernels (numba)"].endswith("bit-identical")


def test_doctor_tables_and_helpers():
    res = CliRunner().invoke(app, ["doctor"])
    assert res.exit_code == 0 and "vector extensions" in res.stdout and "numba" in res.stdout
    assert version_of("no-such-distribution-frugal") is None
    shown = "  - Build settings: BLAS_INFO=open, CXX_FLAGS=-O2, LAPACK_INFO=open, TORCH_VERSION=2"
    assert blas_of(shown) == "blas open, lapack open"
    assert blas_of("nothing here") == "unknown"
    assert collect().to_dict()["frugal"]["frugal"] == frugal.__version__
