"""Quantization-aware training (QAT): weights fake-quantized in the forward pass, gradients
straight through to the latent full-precision weights, AdamW with a cosine schedule on the
same calibration examples post-training methods get; optionally a learnable scale per output
row (LSQ-style: w_q = s·Q(w/s))."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from frugal.formats import get_format
from frugal.nn import QuantConfig, apply_config
from frugal.nn.batches import Batch, batch_nll
from frugal.nn.modules import QuantMixin


@dataclass
class QATConfig:
    """`steps` optimizer steps, one calibration batch each, cycling through the batches in a
    seeded random order (epochs). Learning rates follow a cosine from `lr` to 0 after a
    linear warm-up over `warmup` of the steps. `grad_clip`: max global gradient norm."""

    steps: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup: float = 0.05
    learnable_scales: bool = False
    scale_lr: float = 1e-3
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or not 0 <= self.warmup < 1:
            raise ValueError("QAT needs steps >= 1, lr > 0 and 0 <= warmup < 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def lr_factor(self, step: int) -> float:
        """Multiplier of the learning rate at 0-based `step`."""
        warm = max(1, round(self.warmup * self.steps))
        if step < warm and self.warmup > 0:
            return (step + 1) / warm
        t = (step - (warm if self.warmup > 0 else 0)) / max(1, self.steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


class ScaledQuantizer(nn.Module):
    """w ↦ s·Q(w/s) with one learnable s per output row (initially 1)."""

    def __init__(self, fmt_name: str, rows: int, device: torch.device):
        super().__init__()
        self.fmt = get_format(fmt_name)
        self.scale = nn.Parameter(torch.ones(rows, 1, device=device))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        s = self.scale.view(-1, *([1] * (w.dim() - 1)))
        return self.fmt.quantize(w / s) * s


def quantized_modules(model: nn.Module) -> dict[str, QuantMixin]:
    """Modules whose weight is currently fake-quantized."""
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, QuantMixin) and getattr(m, "weight_q", None) is not None
    }


def bake(model: nn.Module) -> dict[str, dict]:
    """Write each fake-quantized weight's quantized value into the weight and drop the
    quantizer (and learned scales): the model then holds plain weights on the grid."""
    done = {}
    with torch.no_grad():
        for name, m in quantized_modules(model).items():
            q = m.weight_q(m.weight)
            fmt = m.formats["weight"]
            m.weight.copy_(q)
            if isinstance(m.weight_q, nn.Module):
                del m.weight_q
            m.set_formats(None, m.formats.get("input"), m.formats.get("grad"))
            f = get_format(fmt)
            done[name] = {
                "format": f.name,
                "bits_per_element": f.bits_per_element,
                "elements": m.weight.numel(),
            }
    return done


def qat_model(
    model: nn.Module,
    config: QuantConfig,
    batches: Sequence[Batch],
    qat: QATConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
    record_every: int = 0,
) -> dict:
    """Fine-tune the latent weights of every module `config` gives a weight format (other
    parameters frozen), then bake the quantized weights in. `on_step(step, loss)` runs at
    step 0, every `record_every` steps and after the last one, with the model fake-quantized.
    Returns {"losses": training NLL per token per step, "modules": baked modules}."""
    qat = qat or QATConfig()
    if not batches:
        raise ValueError("QAT needs calibration batches")
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    apply_config(model, config)
    modules = quantized_modules(model)
    if not modules:
        raise ValueError("no module matches the quantization config")
    device = next(model.parameters()).device
    frozen = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    weights, scales = [], []
    for m in modules.values():
        m.weight.requires_grad_(True)
        weights.append(m.weight)
        if qat.learnable_scales:
            m.weight_q = ScaledQuantizer(m.formats["weight"], m.weight.shape[0], device)
            scales.append(m.weight_q.scale)
    groups = [{"params": weights, "lr": qat.lr, "weight_decay": qat.weight_decay}]
    if scales:
        groups.append({"params": scales, "lr": qat.scale_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups)
    base_lrs = [g["lr"] for g in groups]
    gen = torch.Generator().manual_seed(qat.seed)
    order: list[int] = []
    losses = []
    was_training = model.training
    model.eval()  # no dropout: the loss is the one the evaluation measures
    try:
        if on_step:
            on_step(0, float("nan"))
        for step in range(qat.steps):
            if not order:
                order = torch.randperm(len(batches), generator=gen).tolist()
            batch = batches[order.pop()]
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * qat.lr_factor(step)
            with torch.enable_grad():
                loss = batch_nll(model, batch) / max(1, batch.tokens)
                opt.zero_grad(set_to_none=True)
                loss.backward()
            if qat.grad_clip:
                torch.nn.utils.clip_grad_norm_(weights + scales, qat.grad_clip)
            opt.step()
            losses.append(loss.item())
            last = step + 1 == qat.steps
            if on_step and (last or (record_every and (step + 1) % record_every == 0)):
                on_step(step + 1, losses[-1])
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(frozen.get(n, False))
        model.train(was_training)
    return {"losses": losses, "modules": bake(model)}


__all__ = ["QATConfig", "ScaledQuantizer", "bake", "qat_model", "quantized_modules"]
