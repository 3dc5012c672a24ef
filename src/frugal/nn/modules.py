"""Quantized drop-in modules: Linear, Conv1d, Conv2d, Embedding and a matmul, which fake-
quantize their weight, input and (for training) the gradient of their output."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from frugal.formats import Autoflex, FlexpointFormat, get_format

Quantizer = Callable[[torch.Tensor], torch.Tensor]


def make_quantizer(name: str | None) -> Quantizer | None:
    """A callable that fake-quantizes a tensor in format `name`; Flexpoint formats get their
    own Autoflex state (one per tensor role of one module)."""
    if name is None:
        return None
    fmt = get_format(name)
    if isinstance(fmt, FlexpointFormat):
        return Autoflex(fmt).quantize
    return fmt.quantize


class _GradQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, quantizer):
        ctx.quantizer = quantizer
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.quantizer(grad), None


def quantize_grad(x: torch.Tensor, quantizer: Quantizer | None) -> torch.Tensor:
    """Identity forward; the gradient flowing back through it is quantized."""
    if quantizer is None or not x.requires_grad:
        return x
    return _GradQuant.apply(x, quantizer)


class QuantMixin:
    """Formats and quantizers of one module; `formats` records the names."""

    def set_formats(self, weight=None, input=None, grad=None) -> None:
        self.formats = {"weight": weight, "input": input, "grad": grad}
        self.weight_q = make_quantizer(weight)
        self.input_q = make_quantizer(input)
        self.grad_q = make_quantizer(grad)

    def qweight(self) -> torch.Tensor:
        w = self.weight
        return self.weight_q(w) if self.weight_q is not None else w

    def qinput(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_q(x) if self.input_q is not None else x

    def extra_repr(self) -> str:
        active = ", ".join(f"{k}={v}" for k, v in self.formats.items() if v)
        return f"{super().extra_repr()}, {active}" if active else super().extra_repr()


class QuantLinear(QuantMixin, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_grad(F.linear(self.qinput(x), self.qweight(), self.bias), self.grad_q)


class QuantConv1d(QuantMixin, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(self.qinput(x), self.qweight(), self.bias)
        return quantize_grad(out, self.grad_q)


class QuantConv2d(QuantMixin, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(self.qinput(x), self.qweight(), self.bias)
        return quantize_grad(out, self.grad_q)


class QuantEmbedding(QuantMixin, nn.Embedding):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = F.embedding(
            ids,
            self.qweight(),
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
        )
        return quantize_grad(out, self.grad_q)


class QuantMatmul(nn.Module):
    """a @ b with each operand fake-quantized (e.g. attention scores × values)."""

    def __init__(self, a: str | None = None, b: str | None = None, grad: str | None = None):
        super().__init__()
        self.formats = {"a": a, "b": b, "grad": grad}
        self.a_q, self.b_q, self.grad_q = make_quantizer(a), make_quantizer(b), make_quantizer(grad)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = self.a_q(a) if self.a_q else a
        b = self.b_q(b) if self.b_q else b
        return quantize_grad(a @ b, self.grad_q)


QUANT_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: QuantLinear,
    nn.Conv1d: QuantConv1d,
    nn.Conv2d: QuantConv2d,
    nn.Embedding: QuantEmbedding,
}
