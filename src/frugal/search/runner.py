"""Run a search: ask the algorithm, measure the configurations not stored yet (in worker
processes), store each the moment it completes, tell the algorithm, until the budget of real
measurements is spent. A stored search resumes where it stopped."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from frugal.search.algorithms import Algorithm
from frugal.search.pareto import FrontTracker
from frugal.search.problems import Problem
from frugal.search.store import SearchStore

_PROBLEM: Problem | None = None
STALL_ROUNDS = 20  # proposals in a row with nothing new before random samples fill in


def _init(problem: Problem) -> None:
    global _PROBLEM
    _PROBLEM = problem


def measure(
    config: dict, problem: Problem | None = None
) -> tuple[list[float] | None, float, str | None]:
    """(objectives, seconds, error) of one configuration; an exception becomes the error."""
    problem = problem or _PROBLEM
    t0 = time.perf_counter()
    try:
        f = [float(v) for v in problem.evaluate(config)]
        if len(f) != len(problem.objectives) or not all(np.isfinite(f)):
            raise ValueError(f"objectives {f} are not {len(problem.objectives)} finite numbers")
        return f, time.perf_counter() - t0, None
    except Exception as exc:  # recorded in the store; the search goes on
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}".splitlines()[0]


@dataclass
class Progress:
    measured: int
    budget: int
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
) -> list[dict]:
    """Measure up to `budget` configurations in total (earlier stored ones count); returns
    the store's rows."""
    if budget < 1:
        raise ValueError("budget must be >= 1")
    space = problem.space
    rows = store.rows()
    history = [(r["config"], r["objectives"]) for r in rows if r["objectives"] is not None]
    failed = sum(r["objectives"] is None for r in rows)
    pool = None
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, ctx, _init, (problem,))
    stalls, round_ = 0, max((r["round"] for r in rows), default=0)
    penalty = np.finfo(float).max / 10

    tracker: list[FrontTracker] = []  # made once the reference point is known

    def report() -> None:
        if not on_progress:
            return
        if not tracker and history:
            ref = reference_point(problem, store, np.array([f for _, f in history]))
            tracker.append(FrontTracker(np.array(ref)))
            for _, f in history[:-1]:
                tracker[0].add(f)
        if tracker and history:
            tracker[0].add(history[-1][1])
        hv = tracker[0].hypervolume if tracker else None
        on_progress(Progress(len(store), budget, hv, failed))

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
            for c, (f, secs, err) in _measure_all(new[: budget - len(store)], problem, pool):
                store.add(space.key(c), c, f, secs, err, round_)
                if f is None:
                    failed += 1
                else:
                    history.append((c, f))
                report()
            stored = {r["key"]: r["objectives"] for r in store.rows()}
            algorithm.observe(
                batch, [stored.get(space.key(c)) or [penalty] * len(problem.objectives)
                        for c in batch],
            )  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return store.rows()


def _measure_all(configs, problem, pool):
    """(config, result) pairs as each measurement completes."""
    if pool is None:
        for c in configs:
            yield c, measure(c, problem)
        return
    running: dict[Future, dict] = {pool.submit(measure, c): c for c in configs}
    while running:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for fut in done:
            yield running.pop(fut), fut.result()


__all__ = ["Progress", "measure", "reference_point", "run_search"]
