"""Layer-by-layer GPTQ over a whole model: the blocks of each stack (a transformer's
ModuleList of layers) are quantized in order, each from the inputs produced by the already
quantized blocks before it, holding one block's activations at a time."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from frugal.formats import get_format
from frugal.nn import QuantConfig, QuantRule, rtn_weights
from frugal.nn.batches import Batch
from frugal.quantize.gptq import GPTQConfig, GPTQResult, HessianCollector, gptq_weight

log = logging.getLogger(__name__)


def find_stacks(model: nn.Module) -> list[str]:
    """Names of the model's layer stacks (ModuleLists of blocks holding Linears), in the
    order the forward pass runs them (module registration order)."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        holds_linear = any(isinstance(m, nn.Linear) for m in module[0].modules())
        if holds_linear and not any(name.startswith(n + ".") for n in names):
            names.append(name)
    return names


class _Stop(Exception):
    """Raised by the capture hook once a stack's first block has seen its inputs."""


@dataclass
class _Inputs:
    """Positional and keyword arguments one batch passed to a stack's first block."""

    args: list
    kwargs: dict

    def hidden(self) -> torch.Tensor:
        return self.args[0] if self.args else self.kwargs["hidden_states"]

    def with_hidden(self, h: torch.Tensor) -> tuple[list, dict]:
        if self.args:
            return [h, *self.args[1:]], self.kwargs
        return self.args, {**self.kwargs, "hidden_states": h}


def _to(x, device):
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


@torch.no_grad()
def capture_inputs(
    model: nn.Module, block: nn.Module, batches: Sequence[Batch], store: str | torch.device
) -> list[_Inputs]:
    """Run the model on each batch up to `block` and keep what the block receives."""
    caught: list[_Inputs] = []

    def hook(_module, args, kwargs):
        caught.append(_Inputs(_to(list(args), store), _to(dict(kwargs), store)))
        raise _Stop

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for b in batches:
            with contextlib.suppress(_Stop):
                model(**b.inputs, use_cache=False)
    finally:
        handle.remove()
    if len(caught) != len(batches):
        raise RuntimeError("the model's forward pass did not reach the stack being quantized")
    return caught


@dataclass
class LayerReport:
    """One quantized Linear: format, layer-wise output error (see GPTQResult), damping."""

    name: str
    format: str
    error: float
    damp: float
    dead_columns: int
    elements: int
    bits_per_element: float


@dataclass
class GPTQRun:
    layers: list[LayerReport] = field(default_factory=list)
    rtn_fallback: dict[str, dict] = field(default_factory=dict)  # module -> RTN record


@torch.no_grad()
def gptq_model(
    model: nn.Module,
    config: QuantConfig,
    batches: Sequence[Batch],
    gptq: GPTQConfig | None = None,
    stacks: Sequence[str] | None = None,
    offload: bool = False,
    on_block: Callable[[str, int], None] | None = None,
    solver: Callable[..., GPTQResult] = gptq_weight,
) -> GPTQRun:
    """GPTQ every Linear that `config` gives a weight format and that sits in a block of one
    of `stacks` (found automatically when None); matching weights outside the stacks get
    RTN. `offload` keeps the captured activations on the CPU (for models on an accelerator).
    `on_block(stack, index)` runs after each block is quantized. `solver(weight, hessian,
    format, config, name)` quantizes one matrix (another implementation can be swapped in)."""
    gptq = gptq or GPTQConfig()
    stacks = list(stacks) if stacks is not None else find_stacks(model)
    if not batches:
        raise ValueError("GPTQ needs calibration batches")
    device = next(model.parameters()).device
    store = torch.device("cpu") if offload else device
    run = GPTQRun()
    done: set[str] = set()
    for stack_name in stacks:
        stack = model.get_submodule(stack_name)
        inputs = capture_inputs(model, stack[0], batches, store)
        for index, block in enumerate(stack):
            prefix = f"{stack_name}.{index}"
            targets = {
                f"{prefix}.{n}": m
                for n, m in block.named_modules()
                if isinstance(m, nn.Linear)
                and (rule := config.rule_for(f"{prefix}.{n}")) is not None
                and rule.weight is not None
            }
            with HessianCollector(targets, device) as hc:
                for inp in inputs:
                    args, kwargs = inp.with_hidden(_to(inp.hidden(), device))
                    block(*_to(args, device), **_to(kwargs, device))
                    hc.next_batch()
            hessians = hc.matrices()
            for name, module in targets.items():
                fmt = get_format(config.rule_for(name).weight)
                res = solver(module.weight, hessians[name], fmt, gptq, name)
                module.weight.copy_(res.weight)
                run.layers.append(
                    LayerReport(
                        name,
                        fmt.name,
                        res.error,
                        res.damp,
                        res.dead_columns,
                        module.weight.numel(),
                        fmt.bits_per_element,
                    )
                )
                done.add(name)
            del hessians
            for inp in inputs:  # outputs of the quantized block feed the next one
                args, kwargs = inp.with_hidden(_to(inp.hidden(), device))
                out = block(*_to(args, device), **_to(kwargs, device))
                out = out[0] if isinstance(out, tuple) else out
                inp.args, inp.kwargs = inp.with_hidden(out.to(store))
            if on_block:
                on_block(stack_name, index)
        del inputs
    # matching weights outside the stacks (e.g. a separate output head): RTN
    leftovers = [
        QuantRule(re.escape(n), weight=rule.weight, regex=True)
        for n, m in model.named_modules()
        if n not in done
        and type(m) is nn.Linear
        and (rule := config.rule_for(n)) is not None
        and rule.weight
    ]
    if leftovers:
        run.rtn_fallback = rtn_weights(model, QuantConfig(leftovers))
        log.warning("%d matching weights outside the layer stacks got RTN", len(leftovers))
    return run


__all__ = ["GPTQRun", "LayerReport", "capture_inputs", "find_stacks", "gptq_model"]
