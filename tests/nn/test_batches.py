"""Scoring batches: the split-half NLL that measures an evaluation's noise floor."""

from __future__ import annotations

import pytest
import torch

from frugal.nn.batches import Batch, batch_nll, mean_nll, split_nll
from tests.predict.test_features import Toy


def batches(n: int) -> list[Batch]:
    g = torch.Generator().manual_seed(n)
    out = []
    for i in range(n):
        ids = torch.randint(0, 8, (2 + i % 3, 7), generator=g)
        out.append(Batch({"input_ids": ids[:, :-1]}, ids[:, 1:].clone()))
    return out


def rows(bs: list[Batch]) -> list[Batch]:
    """Each example of the batches as a batch of its own."""
    return [Batch({"input_ids": b.inputs["input_ids"][i : i + 1]}, b.target[i : i + 1])
            for b in bs for i in range(b.examples)]  # fmt: skip


@pytest.mark.parametrize("n", [1, 3, 6])
def test_split_nll_is_the_mean_and_two_disjoint_halves(n):
    model, bs = Toy(), batches(n)
    whole, a, b = split_nll(model, bs)
    # float32 sums of a few dozen O(1) token losses, in another grouping: far inside 1e-5
    assert whole == pytest.approx(mean_nll(model, bs), rel=1e-5)
    ex = [(float(batch_nll(model, r)), r.tokens) for r in rows(bs)]
    tokens = sum(t for _, t in ex)
    # the first k examples are one half, the rest the other: the longest prefix holding at
    # most half of the tokens (at least one example, at least one left for the other half)
    k = max([1] + [k for k in range(1, len(ex)) if sum(t for _, t in ex[:k]) <= tokens / 2])
    assert a == pytest.approx(sum(s for s, _ in ex[:k]) / sum(t for _, t in ex[:k]), rel=1e-5)
    assert b == pytest.approx(sum(s for s, _ in ex[k:]) / sum(t for _, t in ex[k:]), rel=1e-5)


def test_split_nll_needs_two_examples():
    one = batches(1)[0]
    single = Batch({"input_ids": one.inputs["input_ids"][:1]}, one.target[:1])
    with pytest.raises(ValueError, match="two examples"):
        split_nll(Toy(), [single])
