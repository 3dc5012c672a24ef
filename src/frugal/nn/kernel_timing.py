"""Timing two equivalent kernels once per process, so a layer can run on the faster one on
this CPU (see frugal.nn.native and frugal.nn.wide_linear)."""

from __future__ import annotations

import os
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


def forced_choice(env: str, choices: tuple[str, str]) -> str | None:
    """The kernel choice the environment variable `env` forces (one of `choices`), or None
    for "auto" or unset; anything else is a one-line error naming the choices."""
    forced = os.environ.get(env, "auto")
    if forced not in ("auto", *choices):
        raise ValueError(f"{env}={forced!r}: choose auto, {choices[0]} or {choices[1]}")
    return None if forced == "auto" else forced


__all__ = ["best_ms", "forced_choice"]
