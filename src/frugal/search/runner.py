"""Run a search: ask the algorithm, measure the configurations not stored yet (in worker
processes), store each the moment it completes, tell the algorithm, until the termination
(budget of real measurements, target hypervolume, time) says stop. A stored search resumes
where it stopped."""

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
from frugal.search.termination import Termination

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
    termination: Termination | int,
    store: SearchStore,
    workers: int = 1,
    on_progress: Callable[[Progress], None] | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Measure configurations until `termination` (or a plain budget: that many in total,
    earlier stored ones counting) says stop; returns the store's rows. Measurements run on
    `executor` (default: `workers` local processes); each is stored as it completes, and the
    algorithm sees a round's results in the order it proposed them, so the search does not
    depend on which worker finished first. The progress hypervolume counts feasible points
    only (within `algorithm.limits`)."""
    stop = Termination.of(termination).start()
    budget = stop.budget
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

    def report(f: list[float] | None) -> Progress | None:
        if not on_progress and not stop.needs_hypervolume:
            return None
        if not tracker and (history or f is not None):
            seen = [g for _, g in history] + ([f] if f is not None else [])
            tracker.append(FrontTracker(np.array(reference_point(problem, store, np.array(seen)))))
            for _, g in history:
                if feasible(g, limits):
                    tracker[0].add(g)
        if tracker and f is not None and feasible(f, limits):
            tracker[0].add(f)
        hv = tracker[0].hypervolume if tracker else None
        progress = Progress(len(store), budget, hv, failed)
        if on_progress:
            on_progress(progress)
        return progress

    own = executor is None
    executor = executor or LocalExecutor(problem, workers)
    try:
        while len(store) < budget and stop.reason() is None:
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
            results, reason = {}, None
            for c, (f, secs, err) in executor.map(new[: budget - len(store)]):
                store.add(space.key(c), c, f, secs, err, round_)
                results[space.key(c)] = known[space.key(c)] = f
                failed += f is None
                progress = report(f)
                if len(store) < budget:  # a spent budget ends the round as usual
                    reason = stop.reason(progress)
                if reason is not None:
                    break  # a target or time limit: measurements in flight are not stored
            if reason is not None:
                break
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


__all__ = ["Progress", "Termination", "measure", "reference_point", "run_search"]
