"""Runs the fused kernels (`formats.kernels`) on CPU tensors: splits the work over torch's
thread count, falls back to the torch reference when kernels are off or fail, and carries
compact saturation limits (one per block) to the straight-through gradient.

Switch off with `set_kernels(False)` or the environment variable FRUGAL_KERNELS=0."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch


def _lazy_module(name: str):
    """`name` imported on first attribute access: numba (~0.4 s) loads only when a fused
    kernel first runs, not when a Whisper that needs none is loaded."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    # also an attribute of its package: `from package import name` then takes it as it is
    # (going through the import system would touch the module and load it)
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)
    return module


kernels = _lazy_module("frugal.formats.kernels")

GRAIN = 1 << 17  # elements per thread below which one thread does the whole tensor

_enabled = os.environ.get("FRUGAL_KERNELS", "1") != "0"
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def set_kernels(enabled: bool) -> None:
    """Use the fused CPU kernels (default) or the torch reference everywhere."""
    global _enabled
    _enabled = bool(enabled)


def kernels_enabled() -> bool:
    """True when fused kernels are switched on and numba is importable."""
    return _enabled and kernels.compiled()


@dataclass(frozen=True)
class BlockLimits:
    """Saturation limits in compact form: `limits[g]` holds for block g of a flat tensor seen
    as rows of `row` elements cut into blocks of `block` (a partial last block per row)."""

    limits: torch.Tensor
    row: int
    block: int


def _reset_pool() -> None:
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_reset_pool)  # a forked child has none of the threads


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="frugal-kernel")
            _pool_size = threads
        return _pool


def run_split(fn: Callable[[int, int], None], units: int, unit_elems: int) -> None:
    """Call fn(u0, u1) over [0, units) cut into one range per torch thread (one call when
    the work is small); kernels release the GIL, so the ranges run in parallel."""
    threads = min(torch.get_num_threads(), max(1, units * unit_elems // GRAIN), units)
    if threads <= 1:
        fn(0, units)
        return
    cuts = [units * i // threads for i in range(threads + 1)]
    pool = _executor(threads - 1)
    futures = [pool.submit(fn, a, b) for a, b in pairwise(cuts[:-1])]
    fn(cuts[-2], cuts[-1])  # the calling thread takes the last range
    for f in futures:
        f.result()


def flat(x: torch.Tensor) -> np.ndarray:
    """A contiguous float32 CPU tensor's storage as a flat numpy array (no copy)."""
    return x.reshape(-1).numpy()


def n_blocks(numel: int, row: int, block: int) -> int:
    """Blocks of a flat tensor of `numel` elements seen as rows of `row` cut into `block`s."""
    return (numel // row) * (-(-row // block)) if row else 0


def run_blocks(kernel, x: torch.Tensor, row: int, block: int, *params):
    """Apply a block kernel (x, out, scales, g0, g1, row, block, *params) to contiguous
    float32 `x`; returns the output and the per-block scales it wrote."""
    out = torch.empty_like(x)
    nb = n_blocks(x.numel(), row, block)
    scales = np.empty(nb, np.float32)
    xf, of = flat(x), flat(out)
    run_split(
        lambda g0, g1: kernel(xf, of, scales, g0, g1, row, block, *params),
        nb,
        min(block, row),
    )
    return out, torch.from_numpy(scales)


def run_elements(kernel, x: torch.Tensor, *params, out: torch.Tensor | None = None):
    """Apply an element-wise kernel (x, out, i0, i1, *params) to contiguous float32 `x`,
    into a new tensor or `out` (which may be `x` itself)."""
    out = torch.empty_like(x) if out is None else out
    xf, of = flat(x), flat(out)
    run_split(lambda a, b: kernel(xf, of, a, b, *params), x.numel(), 1)
    return out


def min_max(x: torch.Tensor) -> tuple[float, float]:
    """(min, max) of contiguous float32 `x` over all elements; both NaN when any is NaN."""
    xf, n = flat(x), x.numel()
    parts = max(1, min(torch.get_num_threads(), n // GRAIN))
    res = np.empty((parts, 2), np.float32)
    cuts = [n * i // parts for i in range(parts + 1)]

    def part(a: int, b: int) -> None:
        for t in range(a, b):
            kernels.minmax(xf, cuts[t], cuts[t + 1], res, t)

    run_split(part, parts, GRAIN)
    if np.isnan(res).any():
        return float("nan"), float("nan")
    return float(res[:, 0].min()), float(res[:, 1].max())


def all_finite(x: torch.Tensor) -> bool:
    """No NaN or infinity in `x`: one pass (min and max; NaN propagates into both)."""
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x.detach())
    return math.isfinite(float(lo)) and math.isfinite(float(hi))


def run_elements_absmax(x: torch.Tensor, step: np.float32, qmax: int):
    """`kernels.fixed_absmax` over contiguous float32 `x`: the rounded tensor and max |x|
    (NaN when any element is NaN, inf when any is infinite), from one pass."""
    out = torch.empty_like(x)
    xf, of, n = flat(x), flat(out), x.numel()
    parts = max(1, min(torch.get_num_threads(), n // GRAIN))
    res = np.empty(parts, np.int32)
    cuts = [n * i // parts for i in range(parts + 1)]
    lo, hi = np.float32(-qmax - 1), np.float32(qmax)

    def part(a: int, b: int) -> None:
        for t in range(a, b):
            kernels.fixed_absmax(xf, of, cuts[t], cuts[t + 1], step, lo, hi, res, t)

    run_split(part, parts, GRAIN)
    bits = int(res.max())
    return out, float("nan") if bits > 0x7F800000 else float(np.int32(bits).view(np.float32))


def pass_within(x: torch.Tensor, grad: torch.Tensor, limit) -> torch.Tensor:
    """Straight-through gradient: `grad` where |x| <= limit, zero (grad * 0) elsewhere;
    `limit` a float, a BlockLimits, a broadcastable tensor, or None (no saturation)."""
    if limit is None:
        return grad
    if isinstance(limit, float | BlockLimits) and kernels_enabled() and x.device.type == "cpu":
        xf = x.detach().float().contiguous()
        g = grad.float().contiguous()
        out = torch.empty_like(g)
        a, b, o = flat(xf), flat(g), flat(out)
        if isinstance(limit, float):
            lim32 = np.float32(limit)
            run_split(lambda i0, i1: kernels.clip_grad_all(a, b, o, i0, i1, lim32), g.numel(), 1)
        else:
            lim = limit.limits.numpy()
            run_split(
                lambda g0, g1: kernels.clip_grad(a, b, o, lim, g0, g1, limit.row, limit.block),
                lim.shape[0],
                min(limit.block, limit.row),
            )
        return out.to(grad.dtype)
    if isinstance(limit, BlockLimits):
        limit = expand_limits(limit, x.numel()).view(x.shape).to(x.device)
    elif isinstance(limit, float):
        limit = torch.tensor(limit, dtype=torch.float32, device=x.device)
    mask = (x.detach().abs() <= limit).to(grad.dtype)
    return grad * mask


def expand_limits(limit: BlockLimits, numel: int) -> torch.Tensor:
    """The per-element limits (flat) of a BlockLimits."""
    rows = numel // limit.row
    per_row = -(-limit.row // limit.block)
    full = limit.limits.view(rows, per_row).repeat_interleave(limit.block, dim=1)
    return full[:, : limit.row].reshape(-1)


_warned = False


def attempt(fn: Callable, x: torch.Tensor):
    """fn(x) through the kernels, or None (reference path) when they are off, the tensor is
    not on the CPU, or a kernel fails (then kernels are switched off, with one warning)."""
    global _enabled, _warned
    if not kernels_enabled() or x.device.type != "cpu" or x.numel() == 0:
        return None
    try:
        return fn(x.contiguous())
    except Exception as exc:  # a numba compile or run-time failure: keep working, slower
        _enabled = False
        if not _warned:
            _warned = True
            warnings.warn(
                f"frugal: fused kernels failed ({type(exc).__name__}: {exc}); "
                "using the torch reference path",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
