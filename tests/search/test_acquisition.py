"""Hypervolume improvement against brute force, expected HVI against its closed form (empty
front, independent normals), feasibility, and the greedy batch's believer step."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.search.acquisition import expected_hvi, greedy_batch, hv_improvement
from frugal.search.pareto import hypervolume


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 3), st.integers(0, 12), st.integers(1, 8))
def test_hvi_equals_the_hypervolume_difference(seed, d, n_front, n_points):
    rng = np.random.default_rng(seed)
    front = rng.uniform(0, 1.2, (n_front, d))  # some beyond the reference point
    P = rng.uniform(0, 1.2, (n_points, d))
    ref = np.ones(d)
    got = hv_improvement(front, P, ref)
    base = hypervolume(front, ref)
    want = np.array([hypervolume(np.vstack([front, p]), ref) - base for p in P])
    # both sum at most n_front + 1 products of numbers ≤ 1: float64 error ≪ 1e-12
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.all(got >= 0)


def _expected_positive_part(mu: float, sd: float, r: float) -> float:
    """E[(r − Y)^+] for Y ~ N(mu, sd²)."""
    u = (r - mu) / sd
    return sd * math.exp(-u * u / 2) / math.sqrt(2 * math.pi) + (r - mu) * 0.5 * (
        1 + math.erf(u / math.sqrt(2))
    )


def test_expected_hvi_matches_the_closed_form_within_its_monte_carlo_error():
    rng = np.random.default_rng(0)
    mean, std, ref = np.array([[0.4, 0.7]]), np.array([[0.2, 0.3]]), np.array([1.0, 1.0])
    z = rng.standard_normal((200_000, 2))
    got = expected_hvi(mean, std, np.zeros((0, 2)), ref, z)[0]
    # with an empty front the gain is (r1 − Y1)^+ (r2 − Y2)^+, a product of independent terms
    want = _expected_positive_part(0.4, 0.2, 1.0) * _expected_positive_part(0.7, 0.3, 1.0)
    Y = mean + std * z
    draws = np.prod(np.clip(ref - Y, 0, None), axis=1)
    assert abs(got - want) < 5 * draws.std() / math.sqrt(len(z))


def test_zero_spread_is_plain_improvement_and_infeasible_draws_add_nothing():
    front, ref = np.array([[0.2, 0.8], [0.6, 0.3]]), np.array([1.0, 1.0])
    mean = np.array([[0.4, 0.5], [0.9, 0.9], [0.1, 0.95]])
    z = np.zeros((1, 2))
    np.testing.assert_allclose(
        expected_hvi(mean, np.zeros_like(mean), front, ref, z), hv_improvement(front, mean, ref)
    )
    limited = expected_hvi(mean, np.zeros_like(mean), front, ref, z, limits=[None, 0.9])
    assert limited[2] == 0 and limited[0] > 0  # the third point breaks the limit on f2


def test_greedy_batch_spreads_along_the_front():
    front, ref = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1.2, 1.2])
    # two copies of the best point and one other good point: the believer step makes the
    # copy worthless after the first is taken
    mean = np.array([[0.4, 0.4], [0.4, 0.4], [0.7, 0.15], [1.1, 1.1]])
    got = greedy_batch(mean, np.zeros_like(mean), front, ref, 3, np.random.default_rng(0))
    assert got[:2] in ([0, 2], [1, 2]) and len(set(got)) == 3
    assert greedy_batch(mean, np.full_like(mean, 0.05), front, ref, 10,
                        np.random.default_rng(0))[0] in (0, 1)  # fmt: skip
