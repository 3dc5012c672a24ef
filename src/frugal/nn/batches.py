"""Calibration and evaluation batches shared by every task: model inputs plus the target
tokens whose negative log-likelihood is the global loss (nats per token)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100  # target value of positions that are not scored (prompts, padding)


@dataclass
class Batch:
    """`inputs` go to the model as keyword arguments; `target[b, t]` is the token the logits
    at position t should predict, or IGNORE. `examples`: how many calibration examples
    (utterances, text windows) the batch holds."""

    inputs: dict[str, torch.Tensor]
    target: torch.Tensor

    @property
    def examples(self) -> int:
        return int(self.target.shape[0])

    @property
    def tokens(self) -> int:
        return int((self.target != IGNORE).sum())


def logits(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The model's output logits for a batch (no key/value cache)."""
    return model(**batch.inputs, use_cache=False).logits


def batch_nll(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Summed negative log-likelihood (nats) of the batch's target tokens; differentiable."""
    out = logits(model, batch).float()
    return F.cross_entropy(
        out.reshape(-1, out.shape[-1]),
        batch.target.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


@torch.no_grad()
def mean_nll(model: nn.Module, batches: Iterable[Batch]) -> float:
    """Negative log-likelihood per target token (nats) over all batches."""
    total, count = 0.0, 0
    for b in batches:
        total += float(batch_nll(model, b))
        count += b.tokens
    if count == 0:
        raise ValueError("no target tokens to score")
    return total / count


@torch.no_grad()
def split_nll(model: nn.Module, batches: Sequence[Batch]) -> tuple[float, float, float]:
    """NLL per target token (nats) over all batches, and over each of two disjoint halves
    of their examples (the first examples holding about half the tokens, and the rest):
    their disagreement is the sampling noise of an evaluation on this much data."""
    sums: list[tuple[float, int]] = []  # per example: summed NLL, scored tokens
    for b in batches:
        out = logits(model, b).float()
        per = F.cross_entropy(
            out.reshape(-1, out.shape[-1]), b.target.reshape(-1), ignore_index=IGNORE,
            reduction="none",
        ).view(b.target.shape)  # fmt: skip
        counts = (b.target != IGNORE).sum(1)
        sums += [(float(x), int(n)) for x, n in zip(per.sum(1), counts, strict=True) if n]
    total = sum(n for _, n in sums)
    if len(sums) < 2:
        raise ValueError("need at least two examples with target tokens to split")
    cut, seen = 1, sums[0][1]
    while cut < len(sums) - 1 and seen + sums[cut][1] <= total / 2:
        seen += sums[cut][1]
        cut += 1
    a, b = (sum(x for x, _ in p) / sum(n for _, n in p) for p in (sums[:cut], sums[cut:]))
    return sum(x for x, _ in sums) / total, a, b


def count_examples(batches: Sequence[Batch]) -> int:
    return sum(b.examples for b in batches)


def pad_rows(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad token rows into one [len(rows), longest] long tensor."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


__all__ = [
    "IGNORE",
    "Batch",
    "batch_nll",
    "count_examples",
    "logits",
    "mean_nll",
    "pad_rows",
    "split_nll",
]
