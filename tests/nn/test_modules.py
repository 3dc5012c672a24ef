import pytest
import torch
from torch import nn

from frugal.formats import get_format
from frugal.nn import QuantConfig, QuantLinear, QuantMatmul, QuantRule, apply_config, rtn_weights
from tests.tolerance import assert_matmul_close, matmul_bound


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1)
        self.conv2d = nn.Conv2d(1, 2, 3)
        self.block = nn.ModuleDict({"fc1": nn.Linear(16, 32), "fc2": nn.Linear(32, 16)})
        self.head = nn.Linear(16, 10)

    def forward(self, ids):
        x = self.emb(ids)
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        x = self.block["fc2"](torch.relu(self.block["fc1"](x)))
        return self.head(x)


def test_config_round_trips_json(tmp_path):
    cfg = QuantConfig(
        [
            QuantRule("block.*", weight="mxfp4", input="fp8_e4m3"),
            QuantRule(r"head|emb", weight="int8_pc", regex=True),
        ]
    )
    again = QuantConfig.from_json(cfg.to_json(tmp_path / "q.json"))
    assert again == cfg
    assert QuantConfig.from_json(cfg.to_json()) == cfg
    assert cfg.rule_for("block.fc1").weight == "mxfp4" and cfg.rule_for("head").weight == "int8_pc"
    assert cfg.rule_for("conv") is None


def test_bad_format_in_rule_fails_early():
    with pytest.raises(ValueError, match="unknown number format"):
        QuantRule("*", weight="mxfp5")


def test_surgery_swaps_in_place_and_matches_manual_quantization():
    torch.manual_seed(0)
    model = Tiny()
    ids = torch.randint(0, 10, (2, 7))
    w_before = model.block["fc1"].weight
    changed = apply_config(
        model,
        QuantConfig(
            [
                QuantRule("block.*", weight="mxfp4", input="fp8_e4m3"),
                QuantRule("emb", weight="int4_pc"),
                QuantRule("conv*", weight="int8_pc"),
            ]
        ),
    )
    assert set(changed) == {"block.fc1", "block.fc2", "emb", "conv", "conv2d"}
    assert isinstance(model.block["fc1"], QuantLinear)
    assert model.block["fc1"].weight is w_before  # same parameter, no copy
    x = torch.randn(2, 7, 16)
    ref = torch.nn.functional.linear(
        get_format("fp8_e4m3").quantize(x),
        get_format("mxfp4").quantize(w_before),
        model.block["fc1"].bias,
    )
    assert torch.equal(model.block["fc1"](x), ref)
    out = model(ids)
    out.sum().backward()  # straight-through gradients reach the latent weights
    assert model.block["fc1"].weight.grad is not None and model.emb.weight.grad is not None
    assert "weight=mxfp4" in repr(model.block["fc1"])
    img = torch.randn(1, 1, 5, 5)
    assert model.conv2d(img).shape == (1, 2, 3, 3)


def test_grad_quantization_applies_to_backward_only():
    torch.manual_seed(0)
    lin = nn.Linear(8, 8)
    apply_config(lin, QuantConfig([QuantRule("", grad="fp4_e2m1")]))
    x = torch.randn(4, 8, requires_grad=True)
    y = lin(x)
    assert torch.equal(y, torch.nn.functional.linear(x, lin.weight, lin.bias))  # the same call
    g = torch.randn(4, 8) * 0.37
    y.backward(g)
    gq = get_format("fp4_e2m1").quantize(g)
    assert_matmul_close(x.grad, gq, lin.weight)  # autograd's own product: any order


def test_quant_matmul_and_flexpoint_state():
    mm = QuantMatmul("flex16+5", "flex16+5")
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(3, 4, generator=g), torch.randn(4, 5, generator=g)
    # flex16 keeps 15 magnitude bits below a shared exponent set at most a few bits above the
    # tensor's max: each element errs by ≤ 2^-12·max (generous); the product by Σ|a|δb + δa|b|
    da, db = 2.0**-12 * a.abs().max(), 2.0**-12 * b.abs().max()
    bound = a.abs() @ torch.full_like(b, db) + torch.full_like(a, da) @ b.abs() + 4 * da * db
    assert ((mm(a, b) - a @ b).abs() <= bound + matmul_bound(a, b).float()).all()
    assert mm.a_q.__self__.steps == 1  # an Autoflex per operand


def test_rtn_weights_overwrites_and_rejects_nan():
    torch.manual_seed(0)
    model = Tiny()
    w = model.head.weight.detach().clone()
    rec = rtn_weights(model, QuantConfig.weights_only("int4_g128", "head"))
    assert rec == {"head": {"format": "int4_g128", "bits_per_element": 4.125, "elements": 160}}
    assert torch.equal(model.head.weight, get_format("int4_g128").quantize(w))
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"head\.weight holds NaN"):
        rtn_weights(model, QuantConfig.weights_only("int4_g128", "head"))
