"""Flexpoint training tracks fp32; a fixed-exponent 16-bit baseline does not."""

import json

import torch
from typer.testing import CliRunner

from frugal.cli import app
from frugal.nn import QuantLinear
from frugal.train import LowPrecisionTrainer
from frugal.train.flexpoint_demo import SortTransformer, train_one


def test_flex16_tracks_fp32_and_fixed_point_fails_on_digits():
    runs = {
        m: train_one("digits-cnn", m, seed=0, steps=200, eval_every=100)
        for m in ("fp32", "flex16+5", "fixed16_f8")
    }
    fp32, flex, fixed = (runs[m].val_acc[-1] for m in ("fp32", "flex16+5", "fixed16_f8"))
    assert fp32 > 0.9
    assert abs(flex - fp32) < 0.03
    assert fixed < fp32 - 0.3
    assert runs["flex16+5"].overflow["quantizations"] > 0


def test_trainer_quantizes_every_tensor_role():
    torch.manual_seed(0)
    model = SortTransformer(layers=1, fmt="flex16+5")
    trainer = LowPrecisionTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "flex16+5")
    assert isinstance(model.head, QuantLinear)
    assert model.head.formats == {"weight": "flex16+5", "input": "flex16+5", "grad": "flex16+5"}
    x = torch.randint(0, 10, (4, 8))
    loss = torch.nn.functional.cross_entropy(
        model(x).reshape(-1, 10), x.sort(-1).values.reshape(-1)
    )
    trainer.step(loss)
    stats = trainer.overflow_stats()
    assert stats["tensors"] > 20 and stats["quantizations"] >= stats["tensors"] - 10
    # stored weights lie on a flex16 grid: re-quantizing with their own exponent changes nothing
    w = model.head.weight.detach()
    step = 2.0 ** (trainer.store_q["head.weight"].__self__.exponent - 14)
    assert torch.equal(torch.round(w / step) * step, w)


def test_cli_demo_writes_png_and_json(tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "flexpoint",
            "demo",
            "--out",
            str(tmp_path),
            "--seeds",
            "1",
            "--cnn-steps",
            "20",
            "--sort-steps",
            "20",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "flexpoint_curves.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "flexpoint_results.json").read_text())
    assert {r["mode"] for r in saved["summary"]} == {"fp32", "flex16+5", "fixed16_f8"}
    assert "flex16+5" in res.stdout
