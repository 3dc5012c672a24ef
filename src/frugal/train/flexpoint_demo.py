"""The Flexpoint claim at small scale: a CNN on scikit-learn's handwritten digits and a small
transformer that sorts digit sequences, trained in fp32, in flex16+5 (weights, activations,
gradients; Autoflex exponents) and in 16-bit fixed point with one fixed exponent, with the
same hyper-parameters and seeds. Writes curves (PNG), a table and a JSON of everything."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugal.nn import QuantMatmul
from frugal.plotting import saved_figure
from frugal.train.lowprecision import LowPrecisionTrainer

MODES = {"fp32": None, "flex16+5": "flex16+5", "fixed16_f8": "fixed16_f8"}


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class SortTransformer(nn.Module):
    """Pre-norm encoder: each output position predicts the sorted sequence's token there."""

    def __init__(self, vocab=10, length=8, d=64, heads=4, layers=2, fmt: str | None = None):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(length, d)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d), "out": nn.Linear(d, d),
                "ln2": nn.LayerNorm(d), "fc1": nn.Linear(d, 4 * d), "fc2": nn.Linear(4 * d, d),
                "scores": QuantMatmul(fmt, fmt, fmt), "mix": QuantMatmul(fmt, fmt, fmt),
            }))  # fmt: skip
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        b, t = ids.shape
        x = self.tok(ids) + self.pos(torch.arange(t, device=ids.device))
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["ln1"](x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            att = blk["scores"](q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            mixed = blk["mix"](att.softmax(-1), v).transpose(1, 2).reshape(b, t, -1)
            x = x + blk["out"](mixed)
            x = x + blk["fc2"](F.gelu(blk["fc1"](blk["ln2"](x))))
        return self.head(self.ln(x))


@dataclass
class Curves:
    task: str
    mode: str
    seed: int
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0
    overflow: dict = field(default_factory=dict)


def digits_data(seed: int = 0):
    """scikit-learn's 1797 8x8 handwritten digits, scaled to [0, 1], 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def sort_data(n_train=4096, n_val=512, length=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 10, (n_train + n_val, length), generator=g)
    y = x.sort(-1).values
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def _loss(logits, y):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def train_one(
    task: str,
    mode: str,
    seed: int,
    steps: int,
    eval_every: int,
    batch: int = 64,
    lr: float = 2e-3,
    progress: Callable[[], None] | None = None,
) -> Curves:
    """Train one model; identical data order, init and hyper-parameters for every mode."""
    torch.manual_seed(seed)
    fmt = MODES[mode]
    if task == "digits-cnn":
        model, (train, val) = DigitsCNN(), digits_data(seed)
    else:
        model, (train, val) = SortTransformer(fmt=fmt), sort_data(seed=seed)
    trainer = LowPrecisionTrainer(model, torch.optim.Adam(model.parameters(), lr=lr), fmt)
    g = torch.Generator().manual_seed(seed)
    curves = Curves(task, mode, seed)
    t0 = time.perf_counter()
    running = []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(train[1]), (batch,), generator=g)
        loss = _loss(model(train[0][idx]), train[1][idx])
        trainer.step(loss)
        running.append(loss.item())
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                logits = model(val[0])
                curves.steps.append(step)
                curves.train_loss.append(float(np.mean(running)))
                curves.val_loss.append(_loss(logits, val[1]).item())
                curves.val_acc.append((logits.argmax(-1) == val[1]).float().mean().item())
            running = []
        if progress:
            progress()
    curves.seconds = time.perf_counter() - t0
    curves.overflow = trainer.overflow_stats() if fmt else {}
    return curves


def summarize(runs: list[Curves]) -> list[dict]:
    """Final validation accuracy/loss per (task, mode): mean and spread over seeds."""
    rows = []
    for task in dict.fromkeys(r.task for r in runs):
        for mode in MODES:
            rs = [r for r in runs if r.task == task and r.mode == mode]
            if not rs:
                continue
            acc = np.array([r.val_acc[-1] for r in rs])
            vl = np.array([r.val_loss[-1] for r in rs])
            rows.append(
                {
                    "task": task,
                    "mode": mode,
                    "seeds": len(rs),
                    "val_acc_mean": float(acc.mean()),
                    "val_acc_std": float(acc.std()),
                    "val_loss_mean": float(vl.mean()),
                    "val_loss_std": float(vl.std()),
                    "seconds_mean": float(np.mean([r.seconds for r in rs])),
                    "overflows": sum(r.overflow.get("overflows", 0) for r in rs),
                }
            )
    return rows


def plot(runs: list[Curves], path: Path) -> Path:
    tasks = list(dict.fromkeys(r.task for r in runs))
    with saved_figure(path, 2, len(tasks), figsize=(6 * len(tasks), 8), squeeze=False) as (
        _,
        axes,
    ):
        colors = {"fp32": "black", "flex16+5": "tab:blue", "fixed16_f8": "tab:red"}
        for col, task in enumerate(tasks):
            for r in (r for r in runs if r.task == task):
                first = r.seed == min(x.seed for x in runs if x.task == task and x.mode == r.mode)
                kw = {"color": colors[r.mode], "alpha": 0.8, "label": r.mode if first else None}
                axes[0, col].plot(r.steps, r.train_loss, **kw)
                axes[0, col].plot(
                    r.steps, r.val_loss, linestyle="--", color=colors[r.mode], alpha=0.8
                )
                axes[1, col].plot(r.steps, r.val_acc, **kw)
            axes[0, col].set(
                title=f"{task}: loss (solid train, dashed validation)", xlabel="step", yscale="log"
            )
            axes[1, col].set(title=f"{task}: validation accuracy", xlabel="step", ylim=(0, 1.02))
            axes[0, col].legend()
            axes[1, col].legend()
    return path


def run_demo(
    out: Path,
    seeds: int = 2,
    cnn_steps: int = 600,
    sort_steps: int = 1500,
    eval_every: int = 50,
    progress: Callable[[], None] | None = None,
) -> dict:
    """All tasks × modes × seeds; writes flexpoint_curves.png and flexpoint_results.json."""
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for task, steps in (("digits-cnn", cnn_steps), ("sort-transformer", sort_steps)):
        for mode in MODES:
            for seed in range(seeds):
                runs.append(train_one(task, mode, seed, steps, eval_every, progress=progress))
    summary = summarize(runs)
    png = plot(runs, out / "flexpoint_curves.png")
    from frugal.provenance import versions

    result = {
        "summary": summary,
        "runs": [asdict(r) for r in runs],
        "png": str(png),
        "settings": {
            "seeds": seeds,
            "cnn_steps": cnn_steps,
            "sort_steps": sort_steps,
            "optimizer": "Adam lr 2e-3",
            "batch": 64,
        },
        "versions": versions(),
    }
    (out / "flexpoint_results.json").write_text(json.dumps(result, indent=1))
    return result
