"""Which configurations to measure next, given a surrogate's mean and spread: the hypervolume
improvement (HVI) of a point over the measured front, its expectation under independent
normal predictions per objective (Monte Carlo, common random numbers across candidates), and
a greedy q-batch: take the best, pretend its mean was measured ("Kriging believer"), repeat.
With upper limits on objectives a sample improves the hypervolume only where it is feasible,
so the expectation is over the feasible hypervolume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugal.search.pareto import hypervolume, pareto_mask


def hv_improvement(front: np.ndarray, P: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """HV(front ∪ {p}) − HV(front) for each row p of P (all objectives minimized). Exact:
    vectorized in 2-D, one hypervolume per point above."""
    ref = np.asarray(ref, float)
    P = np.asarray(P, float).reshape(-1, len(ref))
    front = np.asarray(front, float).reshape(-1, len(ref))
    front = front[np.all(front < ref, axis=1)]
    if len(front):
        front = front[pareto_mask(front)]
    if len(ref) != 2:
        base = hypervolume(front, ref)
        return np.array([hypervolume(np.vstack([front, p]), ref) - base for p in P])
    box = np.prod(np.clip(ref - P, 0, None), axis=1)  # what p dominates alone
    if not len(front):
        return box
    front = front[np.argsort(front[:, 0])]  # x ascending, so y descending on a front
    # the part of p's box the front already dominates: a staircase of corner points
    qx = np.minimum(np.maximum(P[:, :1], front[None, :, 0]), ref[0])
    qy = np.minimum(np.maximum(P[:, 1:], front[None, :, 1]), ref[1])
    widths = np.diff(np.concatenate([qx, np.full((len(P), 1), ref[0])], axis=1), axis=1)
    overlap = (widths * (ref[1] - qy)).sum(axis=1)
    return np.clip(box - overlap, 0, None)


def _feasible(Y: np.ndarray, limits: Sequence[float | None] | None) -> np.ndarray:
    if limits is None:
        return np.ones(Y.shape[:-1], bool)
    lim = np.array([np.inf if v is None else v for v in limits], float)
    return np.all(lim >= Y, axis=-1)


def expected_hvi(
    mean: np.ndarray,
    std: np.ndarray,
    front: np.ndarray,
    ref: np.ndarray,
    z: np.ndarray,
    limits: Sequence[float | None] | None = None,
) -> np.ndarray:
    """E[HVI] of each candidate (rows of mean/std) by Monte Carlo over the standard normal
    draws `z` (samples × objectives, shared by all candidates); infeasible draws add 0."""
    Y = mean[:, None, :] + std[:, None, :] * z[None, :, :]  # candidates × samples × objectives
    n, s, d = Y.shape
    gain = hv_improvement(front, Y.reshape(n * s, d), ref).reshape(n, s)
    return (gain * _feasible(Y, limits)).mean(axis=1)


def greedy_batch(
    mean: np.ndarray,
    std: np.ndarray,
    front: np.ndarray,
    ref: np.ndarray,
    q: int,
    rng: np.random.Generator,
    limits: Sequence[float | None] | None = None,
    samples: int = 128,
) -> list[int]:
    """Indices of up to `q` candidates chosen one at a time by expected HVI, each choice's
    mean added to the front before the next (so a batch spreads along the front). When no
    candidate is expected to improve anything, the rest follow in the order given."""
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    d = mean.shape[1]
    z = rng.standard_normal((samples if std.any() else 1, d))
    front = np.asarray(front, float).reshape(-1, d)
    free = np.ones(len(mean), bool)
    picked: list[int] = []
    while len(picked) < min(q, len(mean)):
        gain = expected_hvi(mean, std, front, ref, z, limits)
        gain[~free] = -1.0
        best = int(np.argmax(gain))
        if gain[best] <= 0:
            break
        picked.append(best)
        free[best] = False
        if _feasible(mean[best], limits):
            front = np.vstack([front, mean[best]])
    rest = [i for i in range(len(mean)) if free[i]]
    return picked + rest[: max(0, q - len(picked))]


__all__ = ["expected_hvi", "greedy_batch", "hv_improvement"]
