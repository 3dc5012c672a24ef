"""Timing two equivalent kernels once per process, so a layer can run on the faster one on
this CPU (see frugal.nn.native and frugal.nn.wide_linear)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_ms(fn: Callable[[], object], repeats: int = 3) -> float:
    """Milliseconds of the fastest of `repeats` calls of fn, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


__all__ = ["best_ms"]
