"""The Whisper joint space on tiny.en: canonical dense config, bits follow the formats,
and a search over it stores what it measures."""

from __future__ import annotations

import pytest

from frugal.search.algorithms import make_algorithm
from frugal.search.runner import run_search
from frugal.search.store import SearchStore
from frugal.search.whisper_problems import WhisperJoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def problem():
    return WhisperJoint(utterances=2)


def config(fmt: str, sparsity: float = 0.0, layer: int = 1) -> dict:
    return {"sparsify_layer": layer, "sparsity": sparsity,
            **{f"enc{i}": fmt for i in range(4)}, **{f"dec{i}": fmt for i in range(4)}}  # fmt: skip


def test_joint_space_shape_and_constraint(problem):
    s = problem.space
    assert s.names[:2] == ["sparsify_layer", "sparsity"] and len(s.names) == 2 + 4 + 4
    assert s.is_valid(config("bf16")) and not s.is_valid(config("bf16", 0.0, layer=2))
    assert s.is_valid(config("mxint4", 0.6, layer=2))


def test_joint_objectives(problem):
    wer_bf16, mbit_bf16 = problem.evaluate(config("bf16"))
    wer_4, mbit_4 = problem.evaluate(config("mxint4", 0.4, layer=2))
    assert mbit_4 == pytest.approx(mbit_bf16 * 4.25 / 16)
    assert 0 <= wer_bf16 <= 100 and wer_4 >= 0
    with pytest.raises(ValueError, match="enc0"):
        problem.evaluate({**config("bf16"), "enc0": "int9"})


def test_a_short_search_over_the_joint_space(problem, tmp_path):
    with SearchStore(tmp_path / "s.sqlite") as store:
        rows = run_search(problem, make_algorithm("random", problem.space, 2, batch=3), 3, store)
    assert len(rows) == 3 and all(r["error"] is None for r in rows)
