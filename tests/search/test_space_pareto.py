"""Spaces (keys, encodings, constraints) and Pareto tools against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.search.pareto import dominates, hypervolume, non_dominated_sort, pareto_mask
from frugal.search.space import Categorical, Integer, Ordinal, SearchSpace


def space() -> SearchSpace:
    return SearchSpace(
        [Categorical("fmt", ("bf16", "mxint8", "mxint4")), Integer("layer", 0, 4, 2),
         Ordinal("sparsity", (0.2, 0.4, 0.6))],
        constraints=[lambda c: not (c["fmt"] == "mxint4" and c["sparsity"] == 0.6)],
    )  # fmt: skip


def test_space_keys_indices_and_encodings():
    s = space()
    assert s.size == 27
    c = {"sparsity": 0.4, "fmt": "mxint8", "layer": 2}
    assert s.key(c) == '{"fmt": "mxint8", "layer": 2, "sparsity": 0.4}'
    assert s.from_indices(s.to_indices(c)) == c
    assert s.encode([c]).tolist() == [[0, 1, 0, 2, 0.4]]
    assert s.encode([c], "ordinal").tolist() == [[1, 2, 0.4]]
    with pytest.raises(ValueError, match="layer=3"):
        s.check({"fmt": "bf16", "layer": 3, "sparsity": 0.2})
    with pytest.raises(ValueError, match="unknown parameter"):
        s.check({**c, "heads": 4})
    with pytest.raises(ValueError, match="unique"):
        SearchSpace([Integer("a", 0, 1), Integer("a", 0, 2)])


def test_sampling_respects_constraints_and_exclusions():
    s = space()
    rng = np.random.default_rng(0)
    first = s.sample(10, rng)
    keys = {s.key(c) for c in first}
    assert len(keys) == 10
    rest = s.sample(100, rng, exclude=keys)
    assert len(rest) == 27 - 3 - 10  # 3 configs violate the constraint
    assert not keys & {s.key(c) for c in rest}
    assert all(s.is_valid(c) for c in first + rest)


def test_hypervolume_by_hand():
    ref = np.array([4.0, 4.0])
    assert hypervolume(np.array([[1, 3], [2, 2], [3, 1]]), ref) == pytest.approx(6.0)
    # a dominated point and one beyond the reference add nothing
    assert hypervolume(np.array([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]]), ref) == 6.0
    assert hypervolume(np.array([[1, 1, 1]]), np.array([2.0, 3.0, 4.0])) == pytest.approx(6.0)
    # two boxes [0,2]x[0,1]x[0,1] ∪ [0,1]x[0,2]x[0,1] in a 2x2x1 reference: 2 + 2 − 1
    F = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert hypervolume(F, np.array([2.0, 2.0, 1.0])) == pytest.approx(3.0)
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0


def test_non_dominated_sort_by_hand():
    F = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [2, 2]])
    fronts = non_dominated_sort(F)
    assert [sorted(f.tolist()) for f in fronts] == [[0, 1, 2, 5], [3], [4]]
    assert pareto_mask(F).tolist() == [True, True, True, False, False, True]
    assert dominates(np.array([1, 1]), np.array([1, 2]))
    assert not dominates(np.array([1, 2]), np.array([1, 2]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)), min_size=1,
                max_size=12))  # fmt: skip
def test_hypervolume_matches_pymoo_and_is_monotone(points):
    from pymoo.indicators.hv import HV

    F = np.array(points)
    ref = np.full(3, 1.2)
    hv = hypervolume(F, ref)
    assert hv == pytest.approx(HV(ref_point=ref)(F), abs=1e-9)
    assert hypervolume(F[:-1], ref) <= hv + 1e-12  # adding a point never lowers it


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30))
def test_front_tracker_equals_hypervolume_of_all_points_so_far(points):
    from frugal.search.pareto import FrontTracker

    ref = np.array([1.1, 1.1])
    t = FrontTracker(ref)
    for i, p in enumerate(points):
        assert t.add(p) == pytest.approx(hypervolume(np.array(points[: i + 1]), ref), abs=1e-12)
    assert pareto_mask(t.front).all()
