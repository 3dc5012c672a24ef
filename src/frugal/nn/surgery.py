"""Model surgery: swap matching modules for their quantized versions, in place, sharing
parameters (no copies), and weights-only round-to-nearest (RTN)."""

from __future__ import annotations

import torch
from torch import nn

from frugal.formats import get_format
from frugal.nn.config import QuantConfig
from frugal.nn.modules import QUANT_CLASSES, QuantMixin


def apply_config(model: nn.Module, config: QuantConfig) -> dict[str, dict]:
    """Make every module whose name matches a rule quantize as the rule says; returns
    {module name: formats}. Linear/Conv1d/Conv2d/Embedding (and subclasses) are supported."""
    changed = {}
    for name, module in list(model.named_modules()):
        rule = config.rule_for(name)
        if rule is None:
            continue
        if isinstance(module, QuantMixin):
            module.set_formats(rule.weight, rule.input, rule.grad)
        else:
            cls = next((q for base, q in QUANT_CLASSES.items() if type(module) is base), None)
            if cls is None:
                continue
            module.__class__ = cls  # same parameters and buffers, new forward
            module.set_formats(rule.weight, rule.input, rule.grad)
        changed[name] = dict(module.formats)
    return changed


def matching_linears(model: nn.Module, pattern: str) -> list[str]:
    """Names of the nn.Linear modules whose name matches `pattern` (a QuantRule pattern)."""
    cfg = QuantConfig.weights_only("int8", pattern)
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and cfg.rule_for(n)]


def conv1d_to_linear(model: nn.Module) -> list[str]:
    """Swap every transformers `Conv1D` (GPT-2's projections, weight stored (in, out)) for an
    nn.Linear holding the transposed weight, in place; the outputs are unchanged, and every
    quantizer then sees (out, in) weights. Returns the swapped modules' names."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return []
    swapped = []
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, Conv1D):
            continue
        n_in, n_out = mod.weight.shape
        lin = nn.Linear(n_in, n_out, bias=mod.bias is not None)
        lin.to(device=mod.weight.device, dtype=mod.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(mod.weight.T)
            if mod.bias is not None:
                lin.bias.copy_(mod.bias)
        lin.weight.requires_grad_(mod.weight.requires_grad)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, lin)
        swapped.append(name)
    return swapped


def conv1d_state(state: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """A state dict with the weights of the Linears in `names` transposed back to Conv1D's
    (in, out) layout, so a model converted by `conv1d_to_linear` saves as its original
    architecture."""
    keys = {f"{n}.weight" for n in names}
    return {k: (v.T.contiguous() if k in keys else v) for k, v in state.items()}


def rtn_weights(model: nn.Module, config: QuantConfig) -> dict[str, dict]:
    """Round-to-nearest weights-only quantization: overwrite each matching module's weight
    with its quantized value (no wrapper left behind). Returns {module: {format, bits}}."""
    done = {}
    for name, module in model.named_modules():
        rule = config.rule_for(name)
        if rule is None or rule.weight is None or type(module) not in QUANT_CLASSES:
            continue
        w = module.weight
        if not torch.isfinite(w).all():
            raise ValueError(f"{name}.weight holds NaN or infinite values")
        fmt = get_format(rule.weight)
        with torch.no_grad():
            w.copy_(fmt.quantize(w))
        done[name] = {
            "format": fmt.name,
            "bits_per_element": fmt.bits_per_element,
            "elements": w.numel(),
        }
    return done


def weight_bits(modules: dict[str, dict]) -> float:
    """Bits the quantized weights take, from a record's modules ({bits_per_element,
    elements}); shared scales count through their formats' bits per element."""
    return sum(m["bits_per_element"] * m["elements"] for m in modules.values())
