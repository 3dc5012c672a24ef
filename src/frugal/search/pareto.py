"""Pareto dominance for minimization: non-dominated sorting, the first front, and the
exact hypervolume dominated by a set with respect to a fixed reference point."""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a is no worse than b everywhere and better somewhere (all objectives minimized)."""
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_sort(F: np.ndarray) -> list[np.ndarray]:
    """Fronts of row indices: front 0 is non-dominated, front 1 after removing it, ..."""
    F = np.asarray(F, float)
    n = len(F)
    if n == 0:
        return []
    le = np.all(F[:, None, :] <= F[None, :, :], axis=2)
    lt = np.any(F[:, None, :] < F[None, :, :], axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)
    fronts, current = [], np.flatnonzero(count == 0)
    while len(current):
        fronts.append(current)
        count = count - dom[current].sum(axis=0)
        count[current] = -1
        current = np.flatnonzero(count == 0)
    return fronts


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """True for the rows on the first front (duplicates of a front point included)."""
    mask = np.zeros(len(F), bool)
    if len(F):
        mask[non_dominated_sort(F)[0]] = True
    return mask


def hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by the points of F and bounded by `ref` (points not strictly better
    than ref in every objective add nothing). Exact: a sweep in 2-D, slicing above."""
    F = np.asarray(F, float).reshape(-1, len(ref))
    ref = np.asarray(ref, float)
    F = F[np.all(ref > F, axis=1)]
    if len(F) == 0:
        return 0.0
    F = F[pareto_mask(F)]
    return _hv(np.unique(F, axis=0), ref)


def _hv(F: np.ndarray, ref: np.ndarray) -> float:
    if F.shape[1] == 1:
        return float(ref[0] - F[:, 0].min())
    if F.shape[1] == 2:
        P = F[np.argsort(F[:, 0])]
        xs = np.append(P[:, 0], ref[0])
        vol, best2 = 0.0, ref[1]
        for i in range(len(P)):
            best2 = min(best2, P[i, 1])
            vol += (xs[i + 1] - xs[i]) * (ref[1] - best2)
        return float(vol)
    # slice along the last objective: between consecutive levels the dominated region's
    # cross-section is the (d-1)-D hypervolume of the points at or below the slice
    order = np.argsort(F[:, -1])
    P = F[order]
    levels = np.append(P[:, -1], ref[-1])
    vol = 0.0
    for i in range(len(P)):
        depth = levels[i + 1] - levels[i]
        if depth > 0:
            sub = P[: i + 1, :-1]
            sub = sub[pareto_mask(sub)]
            vol += depth * _hv(np.unique(sub, axis=0), ref[:-1])
    return float(vol)


class FrontTracker:
    """The non-dominated set of the points seen so far and its hypervolume against a fixed
    reference point, updated per point (recomputed only when the front changes)."""

    def __init__(self, ref: np.ndarray):
        self.ref = np.asarray(ref, float)
        self.front = np.zeros((0, len(self.ref)))
        self.hypervolume = 0.0

    def add(self, f) -> float:
        f = np.asarray(f, float)
        if len(self.front) and np.any(np.all(self.front <= f, axis=1)):
            return self.hypervolume  # dominated by (or equal to) a front point
        keep = ~(np.all(f <= self.front, axis=1) & np.any(f < self.front, axis=1))
        self.front = np.vstack([self.front[keep], f])
        self.hypervolume = hypervolume(self.front, self.ref)
        return self.hypervolume


__all__ = ["FrontTracker", "dominates", "hypervolume", "non_dominated_sort", "pareto_mask"]
