"""Training with every tensor in a low-precision format: weights (stored and used), layer
inputs (activations), backpropagated errors and weight gradients. Flexpoint formats get one
Autoflex exponent manager per tensor; other formats are stateless."""

from __future__ import annotations

import torch
from torch import nn

from frugal.formats import Autoflex
from frugal.nn import QuantConfig, QuantRule, apply_config, make_quantizer


@torch.no_grad()
def _quantize_in_place(quantizer, x: torch.Tensor) -> None:
    """x ← quantizer(x); Autoflex managers write in place (no new tensor, no copy)."""
    owner = getattr(quantizer, "__self__", None)
    if isinstance(owner, Autoflex):
        owner.quantize_(x)
    else:
        x.copy_(quantizer(x))


class LowPrecisionTrainer:
    """Wraps a model and optimizer: `step(loss)` backpropagates, quantizes each parameter's
    gradient, updates, then stores each parameter back in the format. `fmt` None = fp32."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, fmt: str | None):
        self.model, self.optimizer, self.fmt = model, optimizer, fmt
        self.grad_q, self.store_q = {}, {}
        if fmt is not None:
            apply_config(model, QuantConfig([QuantRule("*", weight=fmt, input=fmt, grad=fmt)]))
            for name, _ in model.named_parameters():
                self.grad_q[name] = make_quantizer(fmt)
                self.store_q[name] = make_quantizer(fmt)
            self.store()

    @torch.no_grad()
    def store(self) -> None:
        """Round every parameter to the format, in place (a no-op in fp32)."""
        if self.fmt is None:
            return
        for name, p in self.model.named_parameters():
            _quantize_in_place(self.store_q[name], p.data)

    @torch.no_grad()
    def quantize_grads(self) -> None:
        """Round every parameter's gradient to the format, in place (a no-op in fp32)."""
        if self.fmt is None:
            return
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                _quantize_in_place(self.grad_q[name], p.grad)

    def step(self, loss: torch.Tensor) -> None:
        """Backpropagate `loss`, round the gradients, update, round the weights."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.quantize_grads()
        self.optimizer.step()
        self.store()

    def overflow_stats(self) -> dict[str, int]:
        """Autoflex overflows and steps summed over every managed tensor (Flexpoint only)."""
        managers = [
            q.__self__
            for q in (*self.grad_q.values(), *self.store_q.values())
            if hasattr(q, "__self__") and hasattr(q.__self__, "overflows")
        ]
        for m in self.model.modules():
            for attr in ("weight_q", "input_q", "grad_q", "a_q", "b_q"):
                q = getattr(m, attr, None)
                if q is not None and hasattr(getattr(q, "__self__", None), "overflows"):
                    managers.append(q.__self__)
        return {
            "tensors": len(managers),
            "overflows": sum(m.overflows for m in managers),
            "quantizations": sum(m.steps for m in managers),
        }
