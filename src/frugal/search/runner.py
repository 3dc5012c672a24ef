"""Run a search: ask the algorithm, measure the configurations not stored yet (in worker
processes), store each the moment it completes, tell the algorithm, until the budget of real
measurements is spent. A stored search resumes where it stopped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from frugal.search.algorithms import Algorithm
from frugal.search.executors import Executor, LocalExecutor, measure
from frugal.search.pareto import FrontTracker
from frugal.search.problems import Problem
from frugal.search.report import feasible
from frugal.search.store import SearchStore

STALL_ROUNDS = 20  # proposals in a row with nothing new before random samples fill in


@dataclass
class Progress:
    measured: float  # measurements (full-measurement equivalents in a multi-fidelity run)
    budget: float
    hypervolume: float | None
    failed: int


def reference_point(problem: Problem, store: SearchStore, F: np.ndarray) -> list[float] | None:
    """The store's fixed reference point: recorded once, from the problem or else 10% beyond
    the worst of the first measurements."""
    ref = store.get_meta("reference_point")
    if ref is None:
        ref = problem.reference_point()
        if ref is None and len(F):
            worst, best = F.max(axis=0), F.min(axis=0)
            ref = (worst + 0.1 * np.maximum(worst - best, 1e-12)).tolist()
        if ref is not None:
            store.set_meta("reference_point", list(ref))
    return ref


def run_search(
    problem: Problem,
    algorithm: Algorithm,
    budget: int,
    store: SearchStore,
    workers: int = 1,
    on_progress: Callable[[Progress], None] | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Measure up to `budget` configurations in total (earlier stored ones count); returns
    the store's rows. Measurements run on `executor` (default: `workers` local processes);
    each is stored as it completes, and the algorithm sees a round's results in the order it
    proposed them, so the search does not depend on which worker finished first. The progress
    hypervolume counts feasible points only (within `algorithm.limits`)."""
    if budget < 1:
        raise ValueError("budget must be >= 1")
    space = problem.space
    rows = store.rows()
    history = [(r["config"], r["objectives"]) for r in rows if r["objectives"] is not None]
    known = {r["key"]: r["objectives"] for r in rows}  # every stored result, failures as None
    failed = sum(r["objectives"] is None for r in rows)
    stalls, round_ = 0, max((r["round"] for r in rows), default=0)
    penalty = np.finfo(float).max / 10
    tracker: list[FrontTracker] = []  # made once the reference point is known

    limits = algorithm.limits
    if algorithm.reference is None:
        algorithm.reference = problem.reference_point()

    def report(f: list[float] | None) -> None:
        if not on_progress:
            return
        if not tracker and (history or f is not None):
            seen = [g for _, g in history] + ([f] if f is not None else [])
            tracker.append(FrontTracker(np.array(reference_point(problem, store, np.array(seen)))))
            for _, g in history:
                if feasible(g, limits):
                    tracker[0].add(g)
        if tracker and f is not None and feasible(f, limits):
            tracker[0].add(f)
        hv = tracker[0].hypervolume if tracker else None
        on_progress(Progress(len(store), budget, hv, failed))

    own = executor is None
    executor = executor or LocalExecutor(problem, workers)
    try:
        while len(store) < budget:
            batch = algorithm.propose(history)
            keys = store.keys()
            new, fresh = [], set()
            for c in batch:
                space.check(c)
                k = space.key(c)
                if k not in keys and k not in fresh and space.is_valid(c):
                    fresh.add(k)
                    new.append(c)
            stalls = 0 if new else stalls + 1
            if stalls >= STALL_ROUNDS:
                new = space.sample(min(algorithm.batch, budget - len(store)), algorithm.rng, keys)
                if not new:
                    break  # every valid configuration is measured
                batch, stalls = new, 0
            round_ += 1
            results = {}
            for c, (f, secs, err) in executor.map(new[: budget - len(store)]):
                store.add(space.key(c), c, f, secs, err, round_)
                results[space.key(c)] = known[space.key(c)] = f
                failed += f is None
                report(f)
            history += [(c, results[space.key(c)]) for c in new
                        if results.get(space.key(c)) is not None]  # fmt: skip
            algorithm.observe(
                batch, [known.get(space.key(c)) or [penalty] * len(problem.objectives)
                        for c in batch],
            )  # fmt: skip
    finally:
        if own:
            executor.close()
    return store.rows()


__all__ = ["Progress", "measure", "reference_point", "run_search"]
