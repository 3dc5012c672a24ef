"""The common shape of a number format: quantize-dequantize with a straight-through gradient."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import torch

from frugal.formats import fastpath

_COMPILE = False


def set_compile(enabled: bool) -> None:
    """Run the torch reference kernels through torch.compile where the fused CPU kernels do
    not apply (other devices, kernels off): one fused loop per format and shape; the first
    call of each compiles for tens of seconds. Also switched on by FRUGAL_COMPILE=1."""
    global _COMPILE
    _COMPILE = bool(enabled)
    if _COMPILE:
        import torch._inductor.config as inductor

        # keep fp16 scale round trips (x.half().float()) that inductor would otherwise elide
        inductor.emulate_precision_casts = True
        _inductor_cache_per_isa()


def _inductor_cache_per_isa() -> None:
    """Keep inductor's on-disk kernels apart per CPU capability. Seen here (torch 2.13, AMD
    EPYC): kernels cached by an AVX-512 run and reused under ATEN_CPU_CAPABILITY=avx2 left
    the tail of each row unwritten (garbage values); a cache of its own per capability gives
    the right bits. A TORCHINDUCTOR_CACHE_DIR set by the user is left alone."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    default = default_cache_dir()  # inductor writes it into the environment on first use
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR", default) != default:
        return
    isa = torch.backends.cpu.get_cpu_capability().lower()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(default, f"frugal-{isa}")


def straight_through(x: torch.Tensor, q: torch.Tensor, limit: torch.Tensor | None) -> torch.Tensor:
    """Return `q` in the forward pass; in the backward pass let the gradient through to `x`
    unchanged where |x| <= limit (the representable range) and zero elsewhere."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return q
    return _StraightThrough.apply(x, q.detach(), limit)


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantized values, exactly. Backward: the gradient where x was within
    the limit (a tensor, compact `fastpath.BlockLimits`, or None = everywhere)."""

    @staticmethod
    def forward(ctx, x, q, limit):
        ctx.limit = limit
        if limit is not None:  # nothing saturates: no need to keep x for the backward pass
            ctx.save_for_backward(x)
        return q.view_as(q)

    @staticmethod
    def backward(ctx, grad):
        if ctx.limit is None:
            return grad, None, None
        (x,) = ctx.saved_tensors
        return fastpath.pass_within(x, grad, ctx.limit), None, None


class NumberFormat(ABC):
    """A simulated low-precision format. `quantize(x)` returns x rounded onto the format's
    grid, in x's dtype and shape ("fake quant"), differentiable by a clipped STE."""

    name: str

    @property
    @abstractmethod
    def bits_per_element(self) -> float:
        """Storage cost in bits per element, shared scales included."""

    @abstractmethod
    def qdq(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantize-dequantize float32 `x`; also the representable magnitude (broadcastable
        to x) beyond which values saturate, or None when nothing saturates."""

    compilable: bool = True  # qdq is pure tensor code (no host sync)

    # Fitted parameters, for algorithms that quantize a 2-D weight [rows, cols] column by
    # column (GPTQ): `column_group` columns share parameters (scales) that `fit` computes
    # once from the weights as they are then, and `apply` rounds onto that fixed grid.
    def column_group(self, n_cols: int) -> int:
        """Consecutive columns of a [rows, n_cols] weight sharing fitted parameters (1 for
        element-wise formats; n_cols when they span a whole row or the whole tensor)."""
        return 1

    def fit(self, w: torch.Tensor):
        """Parameters of float32 [rows, k] `w`, one set per row over its k columns (or one
        for the whole tensor for tensor-wise formats); None when the format has none."""
        return None

    def apply(self, w: torch.Tensor, params) -> torch.Tensor:
        """Quantize-dequantize float32 [rows, k] `w` with parameters from `fit`."""
        return self.qdq(w)[0]

    def fused_qdq(self, x: torch.Tensor):
        """`qdq` of contiguous float32 CPU `x` by fused kernels, bit-identical to it, with
        limits as a tensor, `fastpath.BlockLimits` or None; None when this format (or this
        tensor's layout) has no kernel."""
        return None

    def run_qdq(self, x: torch.Tensor):
        """`qdq` by the fastest exact path: fused CPU kernels, else torch.compile when
        `set_compile(True)` and the format allows it, else the torch reference."""
        fused = fastpath.attempt(self.fused_qdq, x)
        if fused is not None:
            return fused
        if _COMPILE and self.compilable:
            fn = self.__dict__.get("_compiled_qdq")
            if fn is None:
                fn = self.__dict__["_compiled_qdq"] = torch.compile(self.qdq, dynamic=None)
            return fn(x)
        return self.qdq(x)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize `x` (any float dtype); gradients flow straight through."""
        q, limit = self.run_qdq(x.detach().float())
        return straight_through(x, q.to(x.dtype), limit)

    __call__ = quantize

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.bits_per_element:g} bits/element>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumberFormat) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def move_axis_to_blocks(
    x: torch.Tensor, axis: int, block: int
) -> tuple[torch.Tensor, tuple[int, ...], int]:
    """View `x` as (..., n_blocks, block) along `axis`, zero-padding a partial last block.

    Returns the blocked tensor, the moved shape (before padding) and the padded length."""
    moved = x.movedim(axis, -1)
    n = moved.shape[-1]
    pad = (-n) % block
    if pad:
        moved = torch.nn.functional.pad(moved, (0, pad))
    return moved.reshape(*moved.shape[:-1], -1, block), tuple(x.movedim(axis, -1).shape), n


def undo_blocks(
    blocks: torch.Tensor, moved_shape: tuple[int, ...], n: int, axis: int
) -> torch.Tensor:
    """Inverse of `move_axis_to_blocks`."""
    flat = blocks.reshape(*moved_shape[:-1], -1)[..., :n]
    return flat.movedim(-1, axis)


if os.environ.get("FRUGAL_COMPILE", "0") == "1":
    set_compile(True)
