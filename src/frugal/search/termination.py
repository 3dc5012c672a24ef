"""When a search stops (pymoo's separate termination object): a budget of real measurements,
a target hypervolume reached, or a wall-clock limit — whichever comes first."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol


class _Progress(Protocol):
    measured: float
    hypervolume: float | None


@dataclass
class Termination:
    """Stop after `budget` measurements (full-measurement equivalents under successive
    halving; stored ones count), once the progress hypervolume (feasible points, on the
    store's reference point) reaches `hypervolume`, or after `seconds` of wall time."""

    budget: float
    hypervolume: float | None = None
    seconds: float | None = None
    _t0: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.budget > 0:
            raise ValueError("budget must be > 0")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError("seconds must be > 0")
        if self.hypervolume is not None and not math.isfinite(self.hypervolume):
            raise ValueError("the target hypervolume must be a finite number")

    @classmethod
    def of(cls, spec: Termination | float) -> Termination:
        """A termination as given, or a plain budget of measurements."""
        return spec if isinstance(spec, Termination) else cls(spec)

    def start(self) -> Termination:
        """Start the clock (a run calls it when it begins)."""
        self._t0 = time.monotonic()
        return self

    def reason(self, progress: _Progress | None = None) -> str | None:
        """Why the run should stop now, or None to go on."""
        if self.seconds is not None and time.monotonic() - self._t0 >= self.seconds:
            return f"time limit {self.seconds:g} s"
        if progress is None:
            return None
        if progress.measured >= self.budget - 1e-9:
            return f"budget {self.budget:g}"
        hv = progress.hypervolume
        if self.hypervolume is not None and hv is not None and hv >= self.hypervolume:
            return f"hypervolume {hv:.6g} ≥ target {self.hypervolume:.6g}"
        return None

    @property
    def needs_hypervolume(self) -> bool:
        return self.hypervolume is not None


__all__ = ["Termination"]
