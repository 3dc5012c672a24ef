"""Discrete search spaces: categorical, integer and ordinal parameters, constraints, a
canonical key per configuration, integer vectors for evolutionary operators and one-hot or
ordinal encodings for predictors."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Config = dict[str, object]


@dataclass(frozen=True)
class Categorical:
    """Unordered choices (one-hot encoded for predictors; ordinal encoding: their index)."""

    name: str
    choices: tuple

    @property
    def values(self) -> tuple:
        return tuple(self.choices)

    def ordinal(self, v) -> float:
        return float(self.values.index(v))


@dataclass(frozen=True)
class Ordinal(Categorical):
    """Ordered numeric values, e.g. sparsities 0.2, 0.4, 0.6 (encoded by value)."""

    def ordinal(self, v) -> float:
        return float(v)


@dataclass(frozen=True)
class Integer:
    """low, low+step, ..., high (encoded by value)."""

    name: str
    low: int
    high: int
    step: int = 1

    @property
    def values(self) -> tuple:
        return tuple(range(self.low, self.high + 1, self.step))

    def ordinal(self, v) -> float:
        return float(v)


Param = Categorical | Integer | Ordinal


class SearchSpace:
    """Parameters plus constraints (functions of a config that must return True); optionally
    restricted to a finite list of candidate configurations (a measured sample of a space)."""

    def __init__(
        self,
        params: Sequence[Param],
        constraints: Sequence[Callable[[Config], bool]] = (),
        candidates: Sequence[Config] | None = None,
    ):
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError("parameter names must be unique")
        for p in params:
            if len(p.values) < 1 or len(set(p.values)) != len(p.values):
                raise ValueError(f"parameter {p.name!r} needs distinct values")
        self.params = list(params)
        self.constraints = list(constraints)
        self.candidates: list[Config] | None = None
        if candidates is not None:
            for c in candidates:
                self.check(c)
            unique = {self.key(c): c for c in candidates if self.is_valid(c)}
            if not unique:
                raise ValueError("no valid candidate configuration")
            self.candidates = list(unique.values())
            self._candidate_keys = set(unique)
            self._candidate_codes = self.encode(self.candidates)

    def restrict(self, candidates: Sequence[Config]) -> SearchSpace:
        """The same parameters and constraints, limited to `candidates`."""
        return SearchSpace(self.params, self.constraints, candidates)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def size(self) -> int:
        """Number of configurations before constraints."""
        return math.prod(len(p.values) for p in self.params)

    def key(self, config: Config) -> str:
        """Canonical JSON of a configuration (the store's identity of a measurement)."""
        return json.dumps({n: config[n] for n in self.names}, sort_keys=True)

    def check(self, config: Config) -> None:
        """One-line error for an unknown parameter, a missing one or a value out of range."""
        extra = set(config) - set(self.names)
        if extra:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(extra))}")
        for p in self.params:
            if p.name not in config:
                raise ValueError(f"missing parameter {p.name!r}")
            if config[p.name] not in p.values:
                raise ValueError(f"{p.name}={config[p.name]!r} is not one of {list(p.values)}")

    def is_valid(self, config: Config) -> bool:
        if self.candidates is not None and self.key(config) not in self._candidate_keys:
            return False
        return all(c(config) for c in self.constraints)

    def snap(self, idx: np.ndarray) -> np.ndarray:
        """Each row of value indices moved to the nearest candidate (Euclidean in the one-hot
        encoding: mismatched categoricals plus distance of values); unchanged without
        candidates."""
        if self.candidates is None:
            return np.asarray(idx)
        codes = self.encode_indices(idx)
        d = ((codes[:, None, :] - self._candidate_codes[None, :, :]) ** 2).sum(axis=2)
        return np.array([self.to_indices(self.candidates[j]) for j in d.argmin(axis=1)])

    def to_indices(self, config: Config) -> np.ndarray:
        return np.array([p.values.index(config[p.name]) for p in self.params])

    def from_indices(self, idx: Sequence[int]) -> Config:
        return {
            p.name: p.values[int(np.clip(round(float(i)), 0, len(p.values) - 1))]
            for p, i in zip(self.params, idx, strict=True)
        }

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Index bounds, for integer-vector operators."""
        return np.zeros(len(self.params)), np.array([len(p.values) - 1 for p in self.params])

    def sample(
        self, n: int, rng: np.random.Generator, exclude: set[str] = frozenset(), tries: int = 100
    ) -> list[Config]:
        """Up to `n` distinct valid configurations, none of whose keys is in `exclude`."""
        if self.candidates is not None:
            free = [c for c in self.candidates if self.key(c) not in exclude]
            return [free[i] for i in rng.permutation(len(free))[:n]]
        out, seen = [], set(exclude)
        for _ in range(n * tries):
            if len(out) == n:
                break
            c = {p.name: p.values[rng.integers(len(p.values))] for p in self.params}
            k = self.key(c)
            if k in seen or not self.is_valid(c):
                continue
            seen.add(k)
            out.append(c)
        return out

    def encode(self, configs: Sequence[Config], kind: str = "onehot") -> np.ndarray:
        """Predictor inputs: one-hot categoricals + values of integer/ordinal parameters
        ("onehot"), or every parameter as its value or choice index ("ordinal")."""
        idx = np.array([self.to_indices(c) for c in configs]).reshape(-1, len(self.params))
        return self.encode_indices(idx, kind)

    def encode_indices(self, idx: np.ndarray, kind: str = "onehot") -> np.ndarray:
        """`encode` from a matrix of value indices (one row per configuration), vectorized."""
        if kind not in ("onehot", "ordinal"):
            raise ValueError(f"unknown encoding {kind!r}; choose onehot or ordinal")
        idx = np.asarray(idx).round().astype(int)
        cols = []
        for j, p in enumerate(self.params):
            if kind == "onehot" and type(p) is Categorical:  # Ordinal: by value
                cols.append(np.eye(len(p.values))[idx[:, j]])
            else:
                table = np.array([p.ordinal(v) for v in p.values], dtype=float)
                cols.append(table[idx[:, j]][:, None])
        return np.concatenate(cols, axis=1)


__all__ = ["Categorical", "Config", "Integer", "Ordinal", "SearchSpace"]
