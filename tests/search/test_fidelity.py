"""Successive halving: the budget counts full-measurement equivalents exactly, every rung is
stored, only promoted configurations reach the full measurement, a rerun resumes without
measuring anything twice; bad setups are one-line errors; tables carry fidelities."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from frugal.search.algorithms import LINAS, NSGA2Search, RandomSearch
from frugal.search.fidelity import Halving, run_halving, spent
from frugal.search.pareto import non_dominated_sort
from frugal.search.problems import DiscreteZDT1, TableProblem
from frugal.search.store import SearchStore


@dataclass
class NoisyZDT1(DiscreteZDT1):
    """ZDT1 whose f2 at fidelity k carries a deterministic error ∝ 1/k (k = 9 is exact)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.fidelities = (1, 3, 9)
        self.calls: list[int] = []

    def evaluate(self, config, fidelity=None):
        fidelity = fidelity or 9
        self.calls.append(fidelity)
        f1, f2 = super().evaluate(config)
        wobble = math.sin(7 * sum(config.values()) + f1) if fidelity < 9 else 0.0
        return [f1, f2 + 0.3 * wobble / fidelity]


def test_budget_rungs_promotion_and_resume(tmp_path):
    p = NoisyZDT1()
    path = tmp_path / "s.sqlite"
    with SearchStore(path) as store:
        algo = RandomSearch(p.space, 2, batch=2, seed=0)
        rows = run_halving(p, algo, 10, store, Halving(eta=3))
        partial = store.partial_rows()
        used = spent(store, 9)
    # nothing left that buys another round of one configuration through every rung
    assert 10 - (1 / 9 + 3 / 9 + 1) < used <= 10 + 1e-9
    levels = {r["fidelity"] for r in partial}
    assert levels == {1, 3}
    first = {r["key"] for r in partial if r["fidelity"] == 1}
    second = {r["key"] for r in partial if r["fidelity"] == 3}
    full = {r["key"] for r in rows}
    assert full <= second <= first  # only promoted configurations move up
    # within one round, the promoted third are the best by non-dominated rank at that rung
    r1 = [r for r in partial if r["round"] == 1]
    low = {r["key"]: r["objectives"] for r in r1 if r["fidelity"] == 1}
    up = {r["key"] for r in r1 if r["fidelity"] == 3}
    assert len(low) == 2 * 9 and len(up) == 6
    rank = {}
    for depth, front in enumerate(non_dominated_sort(np.array(list(low.values())))):
        rank |= {list(low)[i]: depth for i in front}
    assert max(rank[k] for k in up) <= min(rank[k] for k in low if k not in up)
    assert sum(f / 9 for f in p.calls) == pytest.approx(used)

    p.calls.clear()
    with SearchStore(path) as store:  # a larger budget resumes; nothing is measured twice
        run_halving(p, RandomSearch(p.space, 2, batch=2, seed=1), 20, store, Halving(eta=3))
        keys = [(r["key"], r["fidelity"]) for r in store.partial_rows()]
        assert len(keys) == len(set(keys)) and spent(store, 9) <= 20 + 1e-9
        assert all(r["key"] in store for r in store.rows()) and "{}" not in store
        assert sum(f / 9 for f in p.calls) == pytest.approx(spent(store, 9) - used)


def test_linas_runs_with_halving_and_only_some_rungs(tmp_path):
    p = NoisyZDT1()
    with SearchStore(":memory:") as store:
        algo = LINAS(p.space, 2, batch=4, seed=0, generations=10)
        rows = run_halving(p, algo, 16, store, Halving(eta=2, rungs=(3, 9)))
        assert {r["fidelity"] for r in store.partial_rows()} == {3}
    assert len(rows) >= 4 and all(r["error"] is None for r in rows)


def test_bad_setups_are_one_line_errors():
    p = NoisyZDT1()
    with SearchStore(":memory:") as store:
        with pytest.raises(ValueError, match="no fidelities"):
            run_halving(DiscreteZDT1(), RandomSearch(p.space, 2), 5, store)
        with pytest.raises(ValueError, match="random or linas"):
            run_halving(p, NSGA2Search(p.space, 2), 5, store)
        with pytest.raises(ValueError, match="last rung"):
            run_halving(p, RandomSearch(p.space, 2), 5, store, Halving(rungs=(1, 3)))
        with pytest.raises(ValueError, match="ascending"):
            run_halving(p, RandomSearch(p.space, 2), 5, store, Halving(rungs=(3, 1, 9)))
        with pytest.raises(ValueError, match="eta"):
            run_halving(p, RandomSearch(p.space, 2), 5, store, Halving(eta=1))


def test_a_table_with_partial_fidelities():
    p = NoisyZDT1()
    configs = p.space.sample(30, np.random.default_rng(0))
    rows = [{"config": c, "objectives": p.evaluate(c)} for c in configs]
    partial = {k: {p.space.key(c): p.evaluate(c, k) for c in configs} for k in (1, 3)}
    t = TableProblem(p, rows, partial=partial)
    assert t.fidelities == (1, 3, 9)
    c = configs[4]
    assert t.evaluate(c, 1) == p.evaluate(c, 1) and t.evaluate(c) == t.evaluate(c, 9)
    with pytest.raises(ValueError, match="fidelity 2"):
        t.evaluate(c, 2)
    with SearchStore(":memory:") as store:
        run_halving(t, RandomSearch(t.space, 2, batch=2, seed=0), 6, store)
        assert len(store) >= 2


def test_an_algorithm_that_repeats_itself_does_not_hang_the_search():
    p = NoisyZDT1()
    fixed = p.space.sample(1, np.random.default_rng(0))[0]

    class Stubborn(RandomSearch):  # proposes the same configuration forever
        def propose(self, history):
            return [fixed]

    with SearchStore(":memory:") as store:
        run_halving(p, Stubborn(p.space, 2, batch=1, seed=0), 4, store, Halving(eta=3))
        # random proposals took over; the budget's end is a narrower round, not a lost one
        assert 4 - (1 / 9 + 3 / 9 + 1) < spent(store, 9) <= 4 + 1e-9
        assert len(store) >= 2 and fixed == store.rows()[0]["config"]


def test_halving_stops_at_a_target_hypervolume():
    """The termination's target ends successive halving at the full measurement that
    reaches it; the spent budget is then below the plain budget's."""
    from frugal.search.pareto import hypervolume
    from frugal.search.termination import Termination

    p = NoisyZDT1()
    p.reference_point = lambda: [1.1, 10.0]  # random configurations land within it
    ref = np.array(p.reference_point())
    target = 0.6 * hypervolume(p.true_front(), ref)
    with SearchStore(":memory:") as store:
        algo = RandomSearch(p.space, 2, batch=2, seed=0)
        rows = run_halving(p, algo, Termination(60, hypervolume=target), store, Halving(eta=3))
        used = spent(store, 9)
    F = np.array([r["objectives"] for r in rows])
    assert hypervolume(F, ref) >= target > hypervolume(F[:-1], ref)
    assert used < 60
