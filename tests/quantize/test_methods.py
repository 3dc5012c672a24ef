"""RTN, GPTQ and QAT on a small causal LM built here: local vs global objective, the data
budget, determinism, the layer-by-layer order, bad input."""

import copy
from functools import lru_cache

import pytest
import torch

from frugal.formats import get_format
from frugal.quantize import (
    GPTQConfig,
    QATConfig,
    find_stacks,
    gptq_weight,
    input_hessians,
    local_objective,
    make_recipe,
    mean_nll,
    quantize,
)
from frugal.tasks.lm import calibration_windows, sliding_windows
from tests.lm_helpers import text_tokens, trained_llama

PATTERN = "model.layers.*"


@lru_cache(maxsize=1)
def setup():
    model = trained_llama()
    tokens = text_tokens()
    calib = calibration_windows(tokens[:3000], 16, 64, seed=1, batch_size=4)
    held = sliding_windows(tokens[3000:4500], 64, 64)
    names = [
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "layers" in n
    ]
    ref = {n: model.get_submodule(n).weight.detach().clone() for n in names}
    return model, calib, held, ref, input_hessians(model, calib, names)


def quantize_model(model, method, fmt, pattern, batches, **kw):
    """quantize() with the recipe a method name makes (what command lines do)."""
    return quantize(model, make_recipe(method, fmt, pattern, **kw), batches)


def quantized(method, fmt="int2_g64", **kw):
    model, calib, *_ = setup()
    m = copy.deepcopy(model)
    rec = quantize_model(m, method, fmt, PATTERN, calib, **kw)
    return m, rec


def test_stacks_found():
    assert find_stacks(setup()[0]) == ["model.layers"]


def test_gptq_wins_local_and_qat_wins_global():
    model, _, held, ref, hess = setup()
    fp = mean_nll(model, held)
    rtn, _ = quantized("rtn")
    gptq, rec = quantized("gptq")
    qat, _ = quantized("qat", qat=QATConfig(steps=24, lr=3e-3))
    local = {
        k: local_objective(m, ref, hess) for k, m in [("rtn", rtn), ("gptq", gptq), ("qat", qat)]
    }
    glob = {k: mean_nll(m, held) for k, m in [("rtn", rtn), ("gptq", gptq), ("qat", qat)]}
    assert glob["rtn"] > fp + 0.1  # 2 bits hurt
    assert local["gptq"] < 0.5 * local["rtn"] and glob["gptq"] < glob["rtn"]
    assert all(r["error"] >= 0 for r in rec["modules"].values())
    assert glob["qat"] < glob["rtn"]  # QAT lowers the global loss...
    # ...and here, as published, more than GPTQ does while its local objective is worse
    assert glob["qat"] < glob["gptq"] and local["qat"] > local["gptq"]


def test_budget_honoured_and_every_block_sees_it():
    model, calib, *_ = setup()
    m = copy.deepcopy(model)
    seen = []
    m.model.layers[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    rec = quantize_model(m, "gptq", "mxint4", PATTERN, calib)
    assert rec["calibration_examples"] == 16
    assert sum(seen) == 2 * 16 + 16  # capture pass + Hessian pass + output pass
    m = copy.deepcopy(model)
    seen.clear()
    m.model.layers[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    rec = quantize_model(m, "qat", "mxint4", PATTERN, calib, qat=QATConfig(steps=6))
    assert (
        rec["calibration_examples"] == 16 and sum(seen) == 6 * 4 and len(rec["train_losses"]) == 6
    )


def test_deterministic_under_seed():
    a, _ = quantized("gptq", "int4_g32")
    b, _ = quantized("gptq", "int4_g32")
    c, _ = quantized("qat", qat=QATConfig(steps=4, seed=7))
    d, _ = quantized("qat", qat=QATConfig(steps=4, seed=7))
    for x, y in [(a, b), (c, d)]:
        for p, q in zip(x.parameters(), y.parameters(), strict=True):
            assert torch.equal(p, q)


def test_sequential_gptq_equals_layer_by_layer_by_hand():
    """Block 1 is quantized from the outputs of the already-quantized block 0."""
    model, calib, *_ = setup()
    fmt = get_format("int4_g32")
    auto, _ = quantized("gptq", "int4_g32")
    hand = copy.deepcopy(model)
    for layer in range(2):
        names = [
            n
            for n, m in hand.named_modules()
            if isinstance(m, torch.nn.Linear) and n.startswith(f"model.layers.{layer}.")
        ]
        hess = input_hessians(hand, calib, names)
        with torch.no_grad():
            for n in names:
                w = hand.get_submodule(n).weight
                w.copy_(gptq_weight(w, hess[n], fmt, GPTQConfig()).weight)
    for (n, p), q in zip(auto.named_parameters(), hand.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6), n


def test_learnable_scales_bake_to_plain_weights():
    model, _, held, *_ = setup()
    m, rec = quantized("qat", "mxint4", qat=QATConfig(steps=4, learnable_scales=True))
    assert set(m.state_dict()) == set(model.state_dict())
    assert all(getattr(mod, "weight_q", None) is None for mod in m.modules())
    assert torch.isfinite(torch.tensor(mean_nll(m, held)))
    assert rec["qat"]["learnable_scales"] is True


def test_bad_input():
    model, calib, *_ = setup()
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        quantize_model(m, "gptq", "int4_g32", PATTERN, calib)
    with pytest.raises(ValueError, match="NaN"):
        quantize_model(copy.deepcopy(m), "qat", "int4_g32", PATTERN, calib)
    with pytest.raises(ValueError, match="calibration"):
        quantize_model(copy.deepcopy(model), "gptq", "int4_g32", PATTERN, [])
    with pytest.raises(ValueError, match="unknown method"):
        quantize_model(copy.deepcopy(model), "awq", "int4_g32", PATTERN, calib)
    with pytest.raises(ValueError, match="deterministic"):
        quantize_model(copy.deepcopy(model), "gptq", "bf16_sr", PATTERN, calib)
    with pytest.raises(ValueError, match="no module"):
        quantize_model(copy.deepcopy(model), "rtn", "int8", "nothing.*", calib)


def test_offloaded_activations_give_the_same_result():
    a, _ = quantized("gptq", "mxint4")
    b, _ = quantized("gptq", "mxint4", offload=True)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_weights_outside_the_stacks_get_rtn():
    model, calib, *_ = setup()
    m = copy.deepcopy(model)
    rec = quantize_model(m, "gptq", "int4_g32", "*", calib)
    assert rec["modules"]["lm_head"]["method"] == "rtn"
    fmt = get_format("int4_g32")
    assert torch.equal(m.lm_head.weight, fmt.quantize(model.lm_head.weight))
    assert "method" not in rec["modules"]["model.layers.0.mlp.up_proj"]


def test_recipes_round_trip_through_json_and_are_recorded():
    """One config per method, dispatched by type, with its method and version in its JSON;
    the record carries the recipe that made it."""
    import json

    from frugal.quantize import GPTQRecipe, QATRecipe, RTNRecipe, recipe_from_dict

    recipes = [
        RTNRecipe("int8_pc", PATTERN),
        GPTQRecipe("mxint4", PATTERN, GPTQConfig(damp=0.05, act_order=True), offload=True),
        QATRecipe("int4_g32", PATTERN, QATConfig(steps=3), record_every=2),
    ]
    for r in recipes:
        d = json.loads(json.dumps(r.to_dict()))
        assert d["method"] == r.method and d["version"] == 1
        assert recipe_from_dict(d) == r
    assert make_recipe("gptq", "mxint4", PATTERN) == GPTQRecipe("mxint4", PATTERN)
    model, calib, *_ = setup()
    rec = quantize(copy.deepcopy(model), recipes[1], calib)
    assert recipe_from_dict(rec["recipe"]) == recipes[1] and rec["gptq"]["act_order"] is True
    with pytest.raises(ValueError, match="version 2 needs a newer frugal"):
        recipe_from_dict({**recipes[0].to_dict(), "version": 2})
    with pytest.raises(ValueError, match="unknown method 'awq'"):
        recipe_from_dict({"method": "awq", "format": "int4"})
    with pytest.raises(ValueError, match="deterministic"):
        GPTQRecipe("bf16_sr")
    with pytest.raises(TypeError, match="not a quantization recipe"):
        quantize(model, {"method": "rtn"})
