"""Multi-fidelity search by successive halving (as multi-objective ASHA does, synchronously):
each round the algorithm proposes `batch · eta^(R−1)` configurations, all are measured at the
lowest fidelity (e.g. the first 6 utterances), the best 1/eta by non-dominated rank and
crowding move up a rung, and the last rung is a full measurement. Every fidelity is stored
(lower ones in the store's `partial` table); the budget counts full-measurement equivalents
(a measurement at fidelity f costs f / full), and the hypervolume is over full ones only."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from frugal.search.algorithms import Algorithm, _front_order
from frugal.search.executors import Executor, LocalExecutor
from frugal.search.pareto import FrontTracker
from frugal.search.problems import Problem
from frugal.search.report import feasible
from frugal.search.runner import STALL_ROUNDS, Progress, reference_point
from frugal.search.store import SearchStore
from frugal.search.termination import Termination


@dataclass
class Halving:
    """eta: the fraction 1/eta of a rung moves up; rungs: the fidelities used (a subset of
    the problem's, ending with the full one; default all of them)."""

    eta: int = 3
    rungs: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def resolve(self, problem: Problem) -> tuple[int, ...]:
        """The rungs for `problem`, checked (one-line errors)."""
        if self.eta < 2:
            raise ValueError("eta must be >= 2")
        levels = problem.fidelities
        if not levels:
            raise ValueError(f"problem {problem.name!r} has no fidelities to halve over")
        rungs = tuple(self.rungs or levels)
        if any(r not in levels for r in rungs) or list(rungs) != sorted(set(rungs)):
            raise ValueError(f"rungs {list(rungs)} must be ascending fidelities of {list(levels)}")
        if rungs[-1] != levels[-1]:
            raise ValueError(f"the last rung must be the full fidelity {levels[-1]}")
        return rungs


def spent(store: SearchStore, full: int) -> float:
    """Full-measurement equivalents stored: full rows plus partial ones at fidelity / full."""
    return len(store) + sum(r["fidelity"] / full for r in store.partial_rows())


def run_halving(
    problem: Problem,
    algorithm: Algorithm,
    termination: Termination | float,
    store: SearchStore,
    halving: Halving | None = None,
    workers: int = 1,
    on_progress: Callable[[Progress], None] | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Successive halving until `termination` says stop (a plain number: that many
    full-measurement equivalents spent, stored ones counting; a stored measurement at any
    rung is reused, never repeated). The algorithm must propose any number of configurations
    on request (random, LINAS)."""
    if algorithm.name not in ("random", "linas"):
        raise ValueError(f"multi-fidelity search runs random or linas, not {algorithm.name}")
    stop = Termination.of(termination).start()
    budget = stop.budget
    halving = halving or Halving()
    rungs = halving.resolve(problem)
    space, full = problem.space, rungs[-1]
    rows = store.rows()
    history = [(r["config"], r["objectives"]) for r in rows if r["objectives"] is not None]
    known = {(r["key"], r["fidelity"]): r["objectives"] for r in store.partial_rows()}
    cost = spent(store, full)
    failed = sum(r["objectives"] is None for r in rows)
    round_ = max((r["round"] for r in rows), default=0)
    if algorithm.reference is None:
        algorithm.reference = problem.reference_point()
    front: dict = {"tracker": None, "counted": 0}  # full measurements seen by the tracker
    stopped: list[str] = []  # why a target or time limit ended the run

    def report() -> Progress | None:
        if not on_progress and not stop.needs_hypervolume:
            return None
        if front["tracker"] is None and history:
            F = np.array([f for _, f in history])
            front["tracker"] = FrontTracker(np.array(reference_point(problem, store, F)))
        tracker = front["tracker"]
        if tracker is not None:
            for _, f in history[front["counted"] :]:
                if feasible(f, algorithm.limits):
                    tracker.add(f)
            front["counted"] = len(history)
        hv = tracker.hypervolume if tracker is not None else None
        progress = Progress(cost, budget, hv, failed)
        if on_progress:
            on_progress(progress)
        return progress

    def measure_at(configs: list, fidelity: int) -> None:
        nonlocal cost, failed
        share = fidelity / full
        todo = configs[: max(0, math.floor((budget - cost) / share + 1e-9))]
        for c, (f, secs, err) in executor.map(todo, None if fidelity == full else fidelity):
            k = space.key(c)
            cost += share
            if fidelity == full:
                store.add(k, c, f, secs, err, round_)
                failed += f is None
                if f is not None:
                    history.append((c, f))
            else:
                store.add_partial(k, fidelity, c, f, secs, err, round_)
                known[(k, fidelity)] = f
            progress = report()
            reason = stop.reason(progress) if cost < budget - 1e-9 else None
            if reason is not None:
                stopped.append(reason)
                return  # measurements in flight are not stored

    def planned(width: int) -> float:
        """What a round of `width` costs if nothing in it is known yet."""
        return sum(math.ceil(width / halving.eta**i) * f / full for i, f in enumerate(rungs))

    own = executor is None
    executor = executor or LocalExecutor(problem, workers)
    stalls = 0
    try:
        while planned(1) <= budget - cost + 1e-9 and not stopped and stop.reason() is None:
            width = algorithm.batch * halving.eta ** (len(rungs) - 1)
            while planned(width) > budget - cost + 1e-9:
                width -= 1  # the budget's end: a narrower round that still ends in full ones
            keys = store.keys()
            if stalls >= STALL_ROUNDS:  # the algorithm only repeats itself: fresh random ones
                tried = keys | {k for k, f in known if f == rungs[0]}
                proposed = space.sample(width, algorithm.rng, tried)
                if not proposed:
                    break  # every valid configuration is measured
            else:
                saved, algorithm.batch = algorithm.batch, width
                try:
                    proposed = algorithm.propose(history)
                finally:
                    algorithm.batch = saved
            fresh = {space.key(c): c for c in proposed
                     if space.key(c) not in keys and space.is_valid(c)}  # fmt: skip
            cohort = list(fresh.values())[:width]
            before = cost
            if cohort:
                round_ += 1
                for fidelity in rungs[:-1]:
                    todo = [c for c in cohort if (space.key(c), fidelity) not in known]
                    measure_at(todo, fidelity)
                    if stopped:
                        break
                    scored = [c for c in cohort if known.get((space.key(c), fidelity)) is not None]
                    if not scored:
                        cohort = []
                        break
                    F = np.array([known[(space.key(c), fidelity)] for c in scored], float)
                    keep = max(1, math.ceil(len(cohort) / halving.eta))
                    cohort = [scored[i] for i in _front_order(F, algorithm.violations(F))[:keep]]
                if not stopped:
                    measure_at(cohort, full)
            stalls = 0 if cost > before else stalls + 1
    finally:
        if own:
            executor.close()
    return store.rows()


__all__ = ["Halving", "run_halving", "spent"]
