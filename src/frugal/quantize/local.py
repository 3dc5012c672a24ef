"""The local (layer-wise) objective: the sum over quantized Linears of the mean squared
error of the layer's output, on the inputs it receives in the full-precision model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from frugal.nn.batches import Batch
from frugal.quantize.gptq import HessianCollector, output_error


@torch.no_grad()
def input_hessians(
    model: nn.Module, batches: Sequence[Batch], names: Iterable[str]
) -> dict[str, torch.Tensor]:
    """H = 2/n XᵀX of the inputs X each named Linear sees over the batches."""
    modules = {n: model.get_submodule(n) for n in names}
    device = next(model.parameters()).device
    with HessianCollector(modules, device) as hc:
        for b in batches:
            model(**b.inputs, use_cache=False)
            hc.next_batch()
    return hc.matrices()


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight a module computes with (its fake-quantized value when it has a quantizer)."""
    q = getattr(module, "weight_q", None)
    return q(module.weight) if q is not None else module.weight


@torch.no_grad()
def local_objective(
    model: nn.Module, reference: dict[str, torch.Tensor], hessians: dict[str, torch.Tensor]
) -> float:
    """Σ over Linears of the mean squared output error (per output, per input vector)
    between the model's current weights and the `reference` (full-precision) weights."""
    total = 0.0
    for name, h in hessians.items():
        w = effective_weight(model.get_submodule(name)).detach().float()
        total += output_error(w - reference[name].float(), h)
    return total


__all__ = ["effective_weight", "input_hessians", "local_objective"]
