"""GPTQ (Frantar et al. 2023) for one weight matrix: quantize column by column, feeding each
column's rounding error back into the columns not yet quantized through the inverse Hessian
of the layer-wise objective ||WX - QX||², with lazy updates in blocks of columns.

Works for every number format that can be fitted column-wise (`NumberFormat.column_group`):
a group's scales are fitted when the loop reaches its first column, on the weights as already
updated by earlier error feedback (per-channel and per-tensor scales: once, at the start).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from frugal.formats import NumberFormat
from frugal.formats.fastpath import all_finite

log = logging.getLogger(__name__)


@dataclass
class GPTQConfig:
    """`damp`: fraction of the Hessian's mean diagonal added to it; `block`: columns per lazy
    update (rounded up to a multiple of the format's group); `act_order`: quantize columns in
    order of decreasing Hessian diagonal (groups then keep scales fitted on the original
    weights, so that they stay contiguous in the original order)."""

    damp: float = 0.01
    block: int = 128
    act_order: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.damp <= 1:
            raise ValueError(f"damp must be in [0, 1], not {self.damp}")
        if self.block < 1:
            raise ValueError("block must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class Hessian:
    """Running H = 2/n Σ x xᵀ over the n input vectors of one layer (rows of `x`).

    Only the upper triangle of blocks of XᵀX is accumulated (H is symmetric): for wide
    layers that is (k+1)/2k of the multiply-adds of the full product (k blocks a side)."""

    BLOCK = 1024  # columns per block of the upper-triangle accumulation

    def __init__(self, columns: int, device: torch.device | str = "cpu"):
        self.sum = torch.zeros(columns, columns, dtype=torch.float32, device=device)
        self.count = 0

    def add(self, x: torch.Tensor) -> None:
        """Add a batch of inputs, any leading shape, last axis = columns."""
        x = x.detach().reshape(-1, x.shape[-1]).to(self.sum.device, torch.float32)
        d, b = x.shape[1], self.BLOCK
        if d <= b:
            self.sum.addmm_(x.t(), x)
        else:
            for i in range(0, d, b):
                for j in range(i, d, b):
                    self.sum[i : i + b, j : j + b].addmm_(x[:, i : i + b].t(), x[:, j : j + b])
        self.count += x.shape[0]

    @property
    def matrix(self) -> torch.Tensor:
        if self.count == 0:
            raise ValueError("no calibration inputs reached this layer")
        h = self.sum * (2.0 / self.count)
        d, b = h.shape[0], self.BLOCK
        if d > b:  # mirror the upper blocks (diagonal blocks are full products already)
            for i in range(0, d, b):
                for j in range(i + b, d, b):
                    h[j : j + b, i : i + b] = h[i : i + b, j : j + b].t()
        return h


class HessianCollector:
    """Forward hooks accumulating the input Hessian of each named Linear; Linears fed the
    very same input tensor (q/k/v projections) share one Hessian, computed once."""

    def __init__(self, modules: dict[str, nn.Module], device: torch.device | str = "cpu"):
        self.modules, self.device = modules, device
        self.hessians: dict[str, Hessian] = {}
        self._seen: list[tuple[torch.Tensor, Hessian]] = []
        self._handles: list = []

    def _hook(self, name: str):
        def hook(module, args, _out):
            x = args[0]
            for t, h in self._seen:
                if t is x:
                    self.hessians.setdefault(name, h)
                    return
            h = self.hessians.get(name)
            if h is None:
                h = self.hessians[name] = Hessian(module.in_features, self.device)
            h.add(x)
            self._seen.append((x, h))

        return hook

    def __enter__(self) -> HessianCollector:
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def next_batch(self) -> None:
        """Call between forward passes (drops the references kept to spot shared inputs)."""
        self._seen.clear()

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._seen.clear()

    def matrices(self) -> dict[str, torch.Tensor]:
        """H = 2/n XᵀX of each module (shared ones computed once)."""
        cache: dict[int, torch.Tensor] = {}
        out = {}
        for n in self.modules:
            if n not in self.hessians:
                raise ValueError(f"no calibration input reached {n}")
            h = self.hessians[n]
            if id(h) not in cache:
                cache[id(h)] = h.matrix
            out[n] = cache[id(h)]
        return out


@dataclass
class GPTQResult:
    """Quantized weights and what it took: final damping (fraction of the mean diagonal),
    dead input columns, and the layer-wise error ½·tr(ΔW H ΔWᵀ)/rows (= mean over outputs of
    the mean squared output error on the calibration inputs)."""

    weight: torch.Tensor
    damp: float
    dead_columns: int
    error: float


def _inverse_cholesky(h: torch.Tensor, damp: float, name: str) -> tuple[torch.Tensor, float]:
    """Upper Cholesky factor U of (H + λ·mean(diag H)·I)⁻¹ = UᵀU, raising λ ×10 until H is
    positive definite (too few calibration inputs make it singular). Damps `h` in place.

    One factorization and one triangular solve: with J the order-reversing permutation,
    J H J = L Lᵀ gives H = R Rᵀ for the upper R = J L J, so H⁻¹ = R⁻ᵀ R⁻¹ and U = R⁻¹ (upper,
    positive diagonal: the Cholesky factor). The usual route (Cholesky, inverse, Cholesky
    again) costs a third more and is no more accurate."""
    diag = h.diagonal()
    undamped = diag.clone()
    mean_diag = float(undamped.mean())
    lam = damp
    while True:
        torch.add(undamped, lam * mean_diag, out=diag)
        lower, info = torch.linalg.cholesky_ex(h.flip(0, 1))
        if int(info) == 0:
            eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
            upper = torch.linalg.solve_triangular(lower.flip(0, 1), eye, upper=True)
            del lower, eye
            if torch.isfinite(upper.diagonal()).all() and bool((upper.diagonal() > 0).all()):
                if lam != damp:
                    log.warning(
                        "%s: Hessian not positive definite with damping %g; used %g "
                        "(more calibration examples would avoid this)",
                        name,
                        damp,
                        lam,
                    )
                return upper, lam
        if lam >= 1.0:
            raise ValueError(
                f"{name}: Hessian stays singular even with damping 1.0 "
                "(calibration inputs are degenerate)"
            )
        lam = min(1.0, max(lam, 1e-4) * 10)


def output_error(delta: torch.Tensor, h: torch.Tensor) -> float:
    """½·tr(ΔW H ΔWᵀ)/rows for H = 2/n XᵀX: the mean over output rows of the mean squared
    output error ||ΔW x||² over the n inputs."""
    total = 0.0
    for r in range(0, delta.shape[0], 1024):  # in row blocks: bounded temporaries
        d = delta[r : r + 1024]
        total += float(((d @ h) * d).sum())
    return 0.5 * total / delta.shape[0]


def sub_block(step: int) -> int:
    """Columns per inner lazy update: the largest divisor of the group step up to 32 (16
    when columns are independent), so that groups start on sub-block boundaries."""
    if step == 1:
        return 16
    return max(d for d in range(1, min(step, 32) + 1) if step % d == 0)


def gptq_weight(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    fmt: NumberFormat,
    config: GPTQConfig | None = None,
    name: str = "weight",
) -> GPTQResult:
    """GPTQ-quantize a [rows, cols] weight given its input Hessian [cols, cols]."""
    config = config or GPTQConfig()
    if weight.dim() != 2 or hessian.shape != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"{name}: weight {tuple(weight.shape)} and Hessian do not match")
    if not all_finite(weight):
        raise ValueError(f"{name} holds NaN or infinite values")
    if not all_finite(hessian):
        raise ValueError(f"{name}: calibration inputs hold NaN or infinite values")
    w = weight.detach().to(torch.float32).clone()
    h = hessian.detach().to(torch.float32, copy=True)
    rows, cols = w.shape
    group = fmt.column_group(cols)

    dead = torch.diag(h) == 0  # inputs that are always zero: any weight there is free
    h[dead, dead] = 1.0
    w[:, dead] = 0.0

    perm = None
    static: list | None = None
    if group == cols:
        static = [fmt.fit(w)]  # per-row or per-tensor: fitted once on the original weights
    if config.act_order:
        if 1 < group < cols:  # keep groups contiguous in the original column order
            static = [fmt.fit(w[:, g : g + group]) for g in range(0, cols, group)]
        perm = torch.argsort(torch.diag(h), descending=True)
        w, h = w[:, perm], h[perm][:, perm]

    mean_diag = float(torch.diagonal(h).mean())
    upper, damp = _inverse_cholesky(h, config.damp, name)
    del h
    step = group if 1 < group < cols else 1
    block = step * math.ceil(config.block / step)
    sub = sub_block(step)

    # Work on Wᵀ: a column of W is a contiguous row here, so the per-column steps read and
    # write contiguous memory.
    wt = w.t().contiguous()
    original_live = wt.clone()  # dead columns zeroed, in the processing order
    qt = torch.empty_like(wt)
    params = None
    loss = 0.0  # Σ over columns of the GPTQ step losses (w - q)²/[U]_ii², all rows
    for b0 in range(0, cols, block):
        b1 = min(b0 + block, cols)
        w1 = wt[b0:b1]  # updated in place
        u1 = upper[b0:b1, b0:b1]
        d1 = u1.diagonal().tolist()
        errs: list[torch.Tensor] = []
        # Two levels of lazy updates: a column's error goes at once only to the columns of
        # its sub-block; the rest of the block gets a sub-block's errors in one product.
        # Groups start on sub-block boundaries, so they are fitted on fully updated weights.
        for s0 in range(0, b1 - b0, sub):
            s1 = min(s0 + sub, b1 - b0)
            for i in range(s0, s1):
                j = b0 + i
                if static is not None:
                    params = static[0] if len(static) == 1 else static[int(perm[j]) // group]
                elif group == 1:
                    params = None
                elif j % group == 0:
                    params = fmt.fit(w1[i : i + group].t())
                col = w1[i]
                qc = fmt.apply(col.unsqueeze(1), params).view(-1)
                qt[j] = qc
                e = torch.sub(col, qc).div_(d1[i])
                if i + 1 < s1:
                    w1[i + 1 : s1].addr_(u1[i, i + 1 : s1], e, alpha=-1.0)
                errs.append(e)
            if s1 < b1 - b0:
                w1[s1:].addmm_(u1[s0:s1, s1:].t(), torch.stack(errs[s0:s1]), alpha=-1.0)
        err1 = torch.stack(errs)  # [block columns, rows]
        loss += float(err1.square().sum())
        if b1 < cols:
            wt[b1:].addmm_(upper[b0:b1, b1:].t(), err1, alpha=-1.0)

    # The step losses add up to ½·tr(ΔW H_damped ΔWᵀ) (the OBS identity behind GPTQ);
    # removing the damping term gives the error under the calibration H, without an extra
    # cols³ product. Dead columns do not count: their inputs are zero.
    delta_sq = float((qt - original_live).square().sum())
    error = 0.5 * (loss - damp * mean_diag * delta_sq) / rows
    q = qt.t()
    if perm is not None:
        q = q[:, torch.argsort(perm)]
    return GPTQResult(
        weight=q.contiguous().to(weight.dtype),
        damp=damp,
        dead_columns=int(dead.sum()),
        error=max(error, 0.0),
    )


__all__ = ["GPTQConfig", "GPTQResult", "Hessian", "HessianCollector", "gptq_weight", "output_error"]
