"""Search problems: a space, named objectives (all minimized) and an evaluate(config).
Synthetic ones have fronts known exactly, for tests and benchmarks."""

from __future__ import annotations

import itertools
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from frugal.search.space import Categorical, Config, Integer, SearchSpace


class Problem(ABC):
    """Base class: subclasses set `name`, `space`, `objectives` and implement evaluate. A
    problem with cheaper approximate measurements lists them in `fidelities` (ascending, the
    last is full) and takes `evaluate(config, fidelity)`."""

    name: str = "problem"
    objectives: tuple[str, ...] = ()
    space: SearchSpace
    fidelities: tuple[int, ...] | None = None

    @abstractmethod
    def evaluate(self, config: Config) -> list[float]:
        """The objectives of one configuration, all to be minimized."""

    def reference_point(self) -> list[float] | None:
        """A fixed point every useful configuration beats (None: derive from data)."""
        return None

    def true_front(self) -> np.ndarray | None:
        """The exact Pareto front when known (synthetic problems)."""
        return None


@dataclass
class DiscreteZDT1(Problem):
    """ZDT1 on a grid: x_i = k/(levels−1); f1 = x1, f2 = g·(1 − √(f1/g)),
    g = 1 + 9·mean(x2..xn). The front: x2..xn = 0, f2 = 1 − √f1 at the grid's f1."""

    n_vars: int = 6
    levels: int = 11
    delay: float = 0.0  # seconds each evaluation sleeps (to test interruption)
    name: str = "zdt1"
    objectives: tuple[str, ...] = ("f1", "f2")
    space: SearchSpace = field(init=False)

    def __post_init__(self) -> None:
        self.space = SearchSpace([Integer(f"x{i}", 0, self.levels - 1) for i in range(self.n_vars)])

    def evaluate(self, config: Config) -> list[float]:
        if self.delay:
            time.sleep(self.delay)
        x = np.array([config[f"x{i}"] for i in range(self.n_vars)], float) / (self.levels - 1)
        g = 1 + 9 * x[1:].mean()
        return [float(x[0]), float(g * (1 - math.sqrt(x[0] / g)))]

    def reference_point(self) -> list[float]:
        return [1.1, 1.1]

    def true_front(self) -> np.ndarray:
        a = np.arange(self.levels) / (self.levels - 1)
        return np.stack([a, 1 - np.sqrt(a)], axis=1)


@dataclass
class MixedPrecision(Problem):
    """Bits per layer from {2, 3, 4, 8}: error Σ s_l·4^(−b_l) against size Σ n_l·b_l (Mbit),
    with seeded sensitivities s_l and sizes n_l; the front comes from enumeration."""

    layers: int = 6
    seed: int = 0
    name: str = "mixed-precision"
    objectives: tuple[str, ...] = ("error", "mbit")
    space: SearchSpace = field(init=False)
    _front: np.ndarray | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.sens = np.exp(rng.normal(0, 1.5, self.layers)) * 100
        self.sizes = rng.integers(1, 9, self.layers).astype(float)
        self.space = SearchSpace([Categorical(f"b{i}", (2, 3, 4, 8)) for i in range(self.layers)])

    def evaluate(self, config: Config) -> list[float]:
        b = np.array([config[f"b{i}"] for i in range(self.layers)], float)
        return [float((self.sens * 4.0**-b).sum()), float((self.sizes * b).sum())]

    def reference_point(self) -> list[float]:
        return [float((self.sens * 4.0**-2).sum()) * 1.05, float(self.sizes.sum() * 8) * 1.05]

    def true_front(self) -> np.ndarray:
        """Every configuration enumerated (4^layers), kept once computed."""
        if self._front is None:
            from frugal.search.pareto import pareto_mask

            F = np.array([
                self.evaluate({f"b{i}": v for i, v in enumerate(bits)})
                for bits in itertools.product((2, 3, 4, 8), repeat=self.layers)
            ])  # fmt: skip
            self._front = F[pareto_mask(F)]
        return self._front.copy()


class TableProblem(Problem):
    """A measured sample of another problem: the space is restricted to the sampled
    configurations and evaluate looks their objectives up. Benchmarks use it to compare
    algorithms on an expensive problem against a fixed reference front, at no cost."""

    def __init__(
        self,
        base: Problem,
        rows: list[dict],
        reference: list[float] | None = None,
        partial: dict[int, dict[str, list[float]]] | None = None,
    ):
        """`partial`: objectives at lower fidelities, {fidelity: {key: objectives}}; with it
        the table's fidelities are those levels plus the base's full one."""
        self.name = f"{base.name}-table"
        self.objectives = tuple(base.objectives)
        ok = [r for r in rows if r.get("objectives") is not None]
        if not ok:
            raise ValueError("the table holds no successful measurement")
        self.space = base.space.restrict([r["config"] for r in ok])
        self.table = {self.space.key(r["config"]): list(r["objectives"]) for r in ok}
        self._ref = reference or base.reference_point()
        self.partial = partial or {}
        if self.partial:
            full = max(base.fidelities or [max(self.partial) + 1])
            self.fidelities = (*sorted(self.partial), full)

    def evaluate(self, config: Config, fidelity: int | None = None) -> list[float]:
        key = self.space.key(config)
        if key not in self.table:
            raise ValueError(f"configuration not in the table: {key}")
        if fidelity is None or fidelity == (self.fidelities or [None])[-1]:
            return self.table[key]
        if fidelity not in self.partial:
            raise ValueError(f"fidelity {fidelity} is not one of {list(self.fidelities or [])}")
        return self.partial[fidelity][key]

    def reference_point(self) -> list[float] | None:
        return self._ref

    def true_front(self) -> np.ndarray:
        from frugal.search.pareto import pareto_mask

        F = np.array(list(self.table.values()), float)
        return F[pareto_mask(F)]


SYNTHETIC = {"zdt1": DiscreteZDT1, "mixed-precision": MixedPrecision}

__all__ = ["SYNTHETIC", "DiscreteZDT1", "MixedPrecision", "Problem", "TableProblem"]
