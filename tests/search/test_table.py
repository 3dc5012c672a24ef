"""Searches on a measured sample of a space (TableProblem): the space is restricted to the
sample, every algorithm proposes only sampled configurations, and the reference front is the
sample's own."""

from __future__ import annotations

import numpy as np
import pytest

from frugal.search.algorithms import make_algorithm
from frugal.search.pareto import hypervolume, pareto_mask
from frugal.search.problems import MixedPrecision, TableProblem
from frugal.search.runner import run_search
from frugal.search.store import SearchStore


def table(n=120, seed=0):
    base = MixedPrecision(layers=8, seed=2)
    configs = base.space.sample(n, np.random.default_rng(seed))
    rows = [{"config": c, "objectives": base.evaluate(c)} for c in configs]
    rows.append({"config": configs[0], "objectives": None})  # a failure is left out
    return base, TableProblem(base, rows)


def test_restricted_space_samples_and_snaps_to_candidates():
    base, p = table()
    keys = set(p.table)
    assert len(keys) == 120 and p.space.candidates is not None
    got = p.space.sample(500, np.random.default_rng(1))
    assert len(got) == 120 and {p.space.key(c) for c in got} == keys
    outside = base.space.sample(50, np.random.default_rng(9))
    outside = [c for c in outside if p.space.key(c) not in keys]
    assert outside and not any(p.space.is_valid(c) for c in outside)
    snapped = p.space.snap(np.array([p.space.to_indices(c) for c in outside]))
    assert all(p.space.key(p.space.from_indices(r)) in keys for r in snapped)
    inside = np.array([p.space.to_indices(c) for c in got[:10]])
    assert (p.space.snap(inside) == inside).all()  # a candidate is its own nearest
    with pytest.raises(ValueError, match="not in the table"):
        p.evaluate(outside[0])


def test_reference_front_is_the_tables():
    _, p = table()
    F = np.array(list(p.table.values()))
    assert np.array_equal(np.sort(p.true_front(), axis=0), np.sort(F[pareto_mask(F)], axis=0))


@pytest.mark.parametrize("alg", ["random", "nsga2", "linas"])
def test_each_algorithm_measures_only_the_table(alg):
    _, p = table()
    kw = {"generations": 5} if alg == "linas" else {}
    with SearchStore(":memory:") as store:
        rows = run_search(p, make_algorithm(alg, p.space, 2, batch=10, seed=0, **kw), 60, store)
    assert len(rows) == 60 and not any(r["error"] for r in rows)
    assert {r["key"] for r in rows} <= set(p.table)


def test_linas_finds_the_tables_front_sooner_than_random():
    _, p = table(200)
    ref = np.array(p.reference_point())
    best = hypervolume(p.true_front(), ref)
    got = {}
    for alg in ("random", "linas"):
        hv = []
        for seed in range(3):
            with SearchStore(":memory:") as store:
                a = make_algorithm(alg, p.space, 2, batch=10, seed=seed)
                rows = run_search(p, a, 50, store)
            hv.append(hypervolume(np.array([r["objectives"] for r in rows]), ref) / best)
        got[alg] = hv
    assert min(got["linas"]) > max(got["random"])
