"""Cheap features: deterministic under a seed, restoring the model exactly, and right on
cases with known answers (Hutchinson's trace against the exact Hessian)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from frugal.nn.batches import Batch, mean_nll
from frugal.predict.features import (
    FeatureConfig,
    InputGram,
    format_descriptors,
    format_features,
    hutchinson_traces,
    model_features,
    outlier_stats,
    perturbed,
    probe_inputs,
)
from frugal.quantize import input_hessians
from frugal.tasks.lm import calibration_windows
from frugal.tasks.subjects import Subject
from tests.lm_helpers import text_tokens, trained_llama


class Toy(nn.Module):
    """Fixed embedding → a 4→8 Linear → logits over 8 tokens."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(8, 4)
        self.proj = nn.Linear(4, 8)

    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=self.proj(torch.tanh(self.emb(input_ids))))


def toy_batches() -> list[Batch]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 8, (3, 6), generator=g)
    return [Batch({"input_ids": ids[:, :-1]}, ids[:, 1:].clone())]


def test_hutchinson_matches_the_exact_hessian_trace():
    model, probe = Toy(), toy_batches()
    w0 = model.proj.weight.detach().clone()
    tokens = sum(b.tokens for b in probe)

    def loss(w):
        logits = torch.tanh(model.emb(probe[0].inputs["input_ids"])) @ w.T + model.proj.bias
        return (
            nn.functional.cross_entropy(
                logits.reshape(-1, 8), probe[0].target.reshape(-1), reduction="sum"
            )
            / tokens
        )

    exact = torch.autograd.functional.hessian(loss, w0).reshape(32, 32).diagonal().mean().item()
    cfg = FeatureConfig(hutchinson_samples=400, hutchinson_step=1e-2)
    est = hutchinson_traces(model, ["proj"], probe, cfg)["proj"]
    assert est == pytest.approx(exact, rel=0.1)
    assert torch.equal(model.proj.weight, w0)  # weights restored
    assert model.emb.weight.requires_grad  # requires_grad restored


def test_perturbed_restores_exactly_even_after_an_error():
    model = Toy()
    w0 = model.proj.weight.detach().clone()
    with pytest.raises(RuntimeError), perturbed(model, {"proj": torch.ones_like(w0)}):
        assert not torch.equal(model.proj.weight, w0)
        raise RuntimeError("boom")
    assert torch.equal(model.proj.weight, w0)


@pytest.fixture(scope="module")
def subject() -> Subject:
    model = trained_llama(steps=60)
    tokens = text_tokens()
    return Subject(
        name="tiny-llama",
        family="llama",
        model=model,
        pattern="model.layers.*",
        stacks=("model.layers",),
        calibration=calibration_windows(tokens[:3000], 8, 64, seed=0),
        heldout=calibration_windows(tokens[3000:], 8, 64, seed=1),
        probe=calibration_windows(tokens[:3000], 4, 64, seed=2),
    )


def test_features_are_deterministic_under_a_seed(subject):
    cfg = FeatureConfig(hutchinson_samples=2)
    f1, s1 = model_features(subject, cfg)
    f2, s2 = model_features(subject, cfg)
    assert {k: v.value for k, v in f1.items() if not k.startswith("cost_")} == {
        k: v.value for k, v in f2.items() if not k.startswith("cost_")
    }
    assert all(v.seconds >= 0 for v in f1.values())
    g1 = format_features(subject, "int4_g128", s1, cfg)
    g2 = format_features(subject, "int4_g128", s2, cfg)
    assert {k: v.value for k, v in g1.items()} == {k: v.value for k, v in g2.items()}
    assert f1["probe_nll"].value == pytest.approx(mean_nll(subject.model, subject.probe))


def test_format_features_order_formats_by_their_noise(subject):
    cfg = FeatureConfig(hutchinson_samples=2)
    _, state = model_features(subject, cfg)
    w0 = {n: p.detach().clone() for n, p in subject.model.named_parameters()}
    f8, f3 = (format_features(subject, f, state, cfg) for f in ("int8_g128", "int3_g128"))
    assert f8["sqnr_db"].value > f3["sqnr_db"].value + 20  # ~6 dB per bit
    assert f8["act_sqnr_db"].value > f3["act_sqnr_db"].value
    assert 0 <= f8["quadratic_rise"].value < f3["quadratic_rise"].value
    assert abs(f8["noise_rise_a1"].value) < f3["noise_rise_a1"].value
    assert all(torch.equal(p, w0[n]) for n, p in subject.model.named_parameters())


def test_outlier_stats_and_format_descriptors():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(256, 256, generator=g)
    s = outlier_stats([w])
    assert abs(s["kurtosis"]) < 0.1 and s["tail6_permille"] == 0
    w[0, 0] = 50.0
    assert outlier_stats([w])["peak_over_std_max"] > 40
    d = format_descriptors("int4_g128", [512, 1024])
    assert d == {"bits": 4.125, "log2_group": 7.0, "float_grid": 0.0}
    assert format_descriptors("mxfp4", [64])["float_grid"] == 1.0
    assert format_descriptors("mxint4_b128", [64])["log2_group"] == 6.0  # capped at the width


def test_cheap_mode_computes_only_the_cheap_features(subject):
    from frugal.predict.model import CHEAP_FEATURES

    cfg = FeatureConfig(landscape=False)
    mf, state = model_features(subject, cfg)
    ff = format_features(subject, "int4_g128", state, cfg)
    names = (set(mf) - {"params"}) | set(ff) | {"method_gptq"}  # raw count: log10 is used
    assert names == set(CHEAP_FEATURES)


@pytest.mark.parametrize("rows", [5, 40])  # fewer rows than columns: kept as the inputs
def test_input_gram_energy_equals_the_hessian_quadratic_form(rows):
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(rows, 16, generator=g), torch.randn(6, 16, generator=g)
    gram = InputGram.of(x)
    assert (gram.factor is not None) == (rows < 16)
    exact = (2.0 / rows) * ((x.double() @ w.double().t()) ** 2).sum().item()
    # both forms sum a few hundred float32 products of O(1) terms: far inside 1e-4 relative
    assert gram.energy(w) == pytest.approx(exact, rel=1e-4)


def test_probe_inputs_agree_with_the_input_hessians_and_share_one_per_input(subject):
    names = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
             "model.layers.0.mlp.down_proj"]  # fmt: skip
    grams = probe_inputs(subject.model, subject.probe, names)
    hess = input_hessians(subject.model, subject.probe, names)
    assert grams[names[0]] is grams[names[1]]  # q and k read the same tensor
    for n in names:
        w = subject.model.get_submodule(n).weight.detach()
        ref = torch.einsum("ij,jk,ik->", w.double(), hess[n].double(), w.double()).item()
        assert grams[n].energy(w) == pytest.approx(ref, rel=1e-4)
