"""Surrogates with a spread: they fit, their intervals cover held-out noisy data, and the
spread grows away from the data; LINAS with expected-HV batches searches and respects
limits; NSGA-II prefers feasible points."""

from __future__ import annotations

import numpy as np
import pytest

from frugal.search.algorithms import LINAS, NSGA2Search, RandomSearch, limit_violations
from frugal.search.pareto import hypervolume
from frugal.search.problems import DiscreteZDT1, MixedPrecision
from frugal.search.report import hv_curve
from frugal.search.runner import run_search
from frugal.search.store import SearchStore
from frugal.search.surrogates import KINDS, Surrogate


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (n, 3))
    clean = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2]
    return X, clean, clean + rng.normal(0, 0.1, n)


@pytest.mark.parametrize("kind", KINDS)
def test_surrogates_fit_and_their_spread_means_something(kind):
    X, _, y = _data(150, 0)
    Xt, clean_t, yt = _data(200, 1)
    m = Surrogate(kind, seed=0).fit(X, y)
    mean, std = m.predict(Xt, return_std=True)
    assert mean.shape == std.shape == (200,) and np.all(std >= 0)
    assert np.mean((mean - clean_t) ** 2) < 0.25 * np.var(clean_t)  # far better than a constant
    if kind == "gp":  # a calibrated model: ±2σ (plus noise) covers most held-out points
        cover = np.abs(yt - mean) <= 2 * np.sqrt(std**2 + 0.1**2)
        assert cover.mean() > 0.85
    far = np.full((1, 3), 6.0)  # outside the data: less certain than inside it
    assert m.predict(far, return_std=True)[1][0] > np.median(std)
    np.testing.assert_allclose(m.predict(Xt), mean)


def test_surrogate_errors():
    with pytest.raises(ValueError, match="unknown surrogate"):
        Surrogate("tree")
    with pytest.raises(ValueError, match="at least 2"):
        Surrogate("gp").fit(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="unknown selection"):
        LINAS(DiscreteZDT1().space, 2, selection="best")
    with pytest.raises(ValueError, match="unknown predictor"):
        LINAS(DiscreteZDT1().space, 2, predictor="mlp")
    with pytest.raises(ValueError, match="one bound"):
        RandomSearch(DiscreteZDT1().space, 2, limits=[1.0])


def _search(problem, algorithm, budget):
    with SearchStore(":memory:") as store:
        return run_search(problem, algorithm, budget, store)


@pytest.mark.parametrize("predictor", ["gp", "forest", "ensemble", "auto"])
def test_linas_ehvi_proposes_new_valid_configs_and_beats_random(predictor):
    p = DiscreteZDT1()
    algo = LINAS(p.space, 2, batch=10, seed=0, generations=15, predictor=predictor,
                 selection="ehvi")  # fmt: skip
    rows = _search(p, algo, 60)
    assert len({r["key"] for r in rows}) == 60 and all(r["error"] is None for r in rows)
    ref = p.reference_point()
    best = hypervolume(p.true_front(), np.array(ref))
    rand = _search(p, RandomSearch(p.space, 2, batch=10, seed=0), 60)
    ours, theirs = hv_curve(rows, ref)[-1] / best, hv_curve(rand, ref)[-1] / best
    # random holds ~0.3 of the front's volume after thousands of samples on this problem; a
    # forest cannot extrapolate to the front's corner (x2..xn = 0) and is no better here
    if predictor != "forest":
        assert ours > 0.85 and ours > theirs + 0.2


def test_limits_count_only_feasible_points_and_steer_the_search():
    p = MixedPrecision(6, seed=1)
    limit = float(np.sum(p.sizes) * 4)  # at most 4 bits per weight on average
    limits = [None, limit]
    rows = [{"objectives": [1.0, limit + 1]}, {"objectives": [2.0, limit]}]
    assert hv_curve(rows, [3.0, 2 * limit], limits) == [0.0, 1.0 * limit]
    assert limit_violations(np.array([[0, limit * 1.5]]), limits)[0] == pytest.approx(0.5)

    def feasible_share(algo, budget=80) -> float:
        later = _search(p, algo, budget)[40:]  # after the first rounds
        return np.mean([r["objectives"][1] <= limit for r in later])

    base = feasible_share(RandomSearch(p.space, 2, batch=10, seed=0))
    for algo in (
        NSGA2Search(p.space, 2, batch=10, seed=0, limits=limits),
        LINAS(p.space, 2, batch=10, seed=0, generations=15, limits=limits),
        LINAS(
            p.space,
            2,
            batch=10,
            seed=0,
            generations=15,
            limits=limits,
            selection="ehvi",
            predictor="gp",
        ),
    ):
        assert feasible_share(algo) > base + 0.15, algo.name
