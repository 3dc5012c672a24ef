"""Cheap features that predict the loss of a quantized model without quantizing it with
calibration and evaluating it: size, full-precision loss, weight statistics, RTN noise (SQNR,
activation-weighted SQNR), the local loss landscape on a few probe examples (loss along random
and quantization-noise directions, Hutchinson's Hessian trace) and the quadratic loss
estimate that combines curvature with noise. Every feature group records its cost (s)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from frugal.formats import get_format
from frugal.nn import matching_linears
from frugal.nn.batches import batch_nll, mean_nll
from frugal.tasks.subjects import Subject


@dataclass
class FeatureConfig:
    """Radii of random directions (relative to each layer's weight norm), steps along the
    RTN noise (fractions of it), Hutchinson probes and the finite-difference step."""

    radii: tuple[float, ...] = (0.03, 0.1)
    directions: int = 1
    alphas: tuple[float, ...] = (0.5, 1.0)
    hutchinson_samples: int = 2
    hutchinson_step: float = 1e-3
    seed: int = 0
    landscape: bool = True  # False: only the cheap features (no probe passes but one)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass
class Feature:
    value: float
    seconds: float


@dataclass
class InputGram:
    """H = 2/n·XᵀX of the n probe inputs X one Linear sees, kept as the scaled inputs
    √(2/n)·X when they are fewer rows than H (a few hundred probe tokens against a wide
    layer's columns² floats: 321 MB per 8960-wide layer), else as H."""

    factor: torch.Tensor | None = None
    matrix: torch.Tensor | None = None

    @classmethod
    def of(cls, x: torch.Tensor) -> InputGram:
        n, d = x.shape
        if n < d:
            return cls(factor=x * math.sqrt(2.0 / n))
        return cls(matrix=(x.t() @ x) * (2.0 / n))

    def energy(self, w: torch.Tensor) -> float:
        """tr(W H Wᵀ): the summed squared output of W over the probe inputs, × 2/n."""
        if self.factor is not None:
            return (self.factor @ w.t()).pow(2).sum().item()
        return torch.einsum("ij,jk,ik->", w, self.matrix, w).item()


@torch.no_grad()
def probe_inputs(model: nn.Module, batches, names: Iterable[str]) -> dict[str, InputGram]:
    """The input Gram matrix of each named Linear over the probe batches; Linears fed the
    very same input tensor (q/k/v, gate/up) share one."""
    rows: dict[str, list[torch.Tensor]] = {}
    shared: dict[str, str] = {}
    seen: list[tuple[torch.Tensor, str]] = []

    def hook(name):
        def fn(_module, args, _out):
            x = args[0]
            for t, first in seen:
                if t is x:
                    shared[name] = first
                    return
            seen.append((x, name))
            rows.setdefault(name, []).append(x.detach().float().reshape(-1, x.shape[-1]))

        return fn

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        for b in batches:
            model(**b.inputs, use_cache=False)
            seen.clear()
    finally:
        for h in handles:
            h.remove()
    grams = {n: InputGram.of(torch.cat(r)) for n, r in rows.items()}
    out = {}
    for n in names:
        if n not in grams and n not in shared:
            raise ValueError(f"no probe input reached {n}")
        out[n] = grams[n] if n in grams else grams[shared[n]]
    return out


@dataclass
class ModelState:
    """What per-format features reuse from the per-model pass: the quantized Linears, the
    probe loss, their probe inputs' Gram matrices and Hessian-trace estimates (per element)."""

    names: list[str]
    probe_nll: float
    input_h: dict[str, InputGram] = field(default_factory=dict)
    trace: dict[str, float] = field(default_factory=dict)


def _weights(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    return {n: model.get_submodule(n).weight for n in names}


@contextmanager
def perturbed(
    model: nn.Module, deltas: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]
) -> Iterator[None]:
    """Add `deltas` to the named modules' weights, restoring the exact originals after;
    (name, delta) pairs may come from a generator, so only one delta need exist at a time."""
    saved = {}
    pairs = deltas.items() if isinstance(deltas, Mapping) else deltas
    with torch.no_grad():
        for n, d in pairs:
            w = model.get_submodule(n).weight
            saved[n] = w.detach().clone()
            w.add_(d.to(w.dtype))
    try:
        yield
    finally:
        with torch.no_grad():
            for n, w0 in saved.items():
                model.get_submodule(n).weight.copy_(w0)


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def model_features(
    subject: Subject, config: FeatureConfig
) -> tuple[dict[str, Feature], ModelState]:
    """Per-model features (independent of the format) and the state per-format ones reuse."""
    model = subject.model
    names = matching_linears(model, subject.pattern)
    if not names:
        raise ValueError(f"{subject.name}: no Linear matches {subject.pattern!r}")
    ws = _weights(model, names)
    feats: dict[str, Feature] = {}
    t0 = time.perf_counter()
    n_q = sum(w.numel() for w in ws.values())
    feats["params"] = Feature(float(subject.params), 0.0)
    feats["log10_params"] = Feature(math.log10(subject.params), 0.0)
    feats["log10_quantized"] = Feature(math.log10(n_q), 0.0)
    feats["depth"] = Feature(float(len(names)), 0.0)
    stats = outlier_stats(list(ws.values()))
    dt = time.perf_counter() - t0
    feats.update({k: Feature(v, dt / len(stats)) for k, v in stats.items()})

    probe_nll, dt = _timed(mean_nll, model, subject.probe)
    feats["probe_nll"] = Feature(probe_nll, dt)
    state = ModelState(names, probe_nll)

    if not config.landscape:
        return feats, state
    gen = torch.Generator().manual_seed(config.seed)
    for r in config.radii:
        t0 = time.perf_counter()
        rises = []
        for _ in range(config.directions):
            deltas = ((n, _direction(w, r, gen)) for n, w in ws.items())  # one at a time
            with perturbed(model, deltas):
                rises.append(mean_nll(model, subject.probe) - probe_nll)
        feats[f"rand_rise_r{r:g}"] = Feature(sum(rises) / len(rises), time.perf_counter() - t0)

    t0 = time.perf_counter()
    state.trace = hutchinson_traces(model, names, subject.probe, config)
    total = sum(state.trace[n] * ws[n].numel() for n in names)
    feats["hessian_trace_mean"] = Feature(total / n_q, time.perf_counter() - t0)

    state.input_h, dt = _timed(probe_inputs, model, subject.probe, names)
    feats["cost_input_hessians"] = Feature(dt, dt)  # a cost, not a predictor input
    return feats, state


def _direction(w: torch.Tensor, radius: float, gen: torch.Generator) -> torch.Tensor:
    """A Gaussian direction with norm `radius`·‖w‖ (layer-wise normalization)."""
    d = torch.randn(w.shape, generator=gen)
    return d * (radius * w.detach().float().norm() / d.norm())


def outlier_stats(weights: list[torch.Tensor]) -> dict[str, float]:
    """Weight-distribution statistics averaged over layers: excess kurtosis, max|w|/std,
    fraction of |w| beyond 6 standard deviations (in ‰), and the worst layer's max/std."""
    kurt, peak, tail = [], [], []
    for w in weights:
        x = w.detach().float().flatten()
        x = x - x.mean()
        std = x.std().clamp_min(1e-12)
        kurt.append(((x / std) ** 4).mean().item() - 3.0)
        peak.append((x.abs().max() / std).item())
        tail.append((x.abs() > 6 * std).float().mean().item() * 1000)
    n = len(weights)
    return {
        "kurtosis": sum(kurt) / n,
        "peak_over_std": sum(peak) / n,
        "peak_over_std_max": max(peak),
        "tail6_permille": sum(tail) / n,
    }


def _probe_grads(model: nn.Module, probe) -> None:
    """The probe loss's gradient (per target token) into each parameter's .grad."""
    model.zero_grad(set_to_none=True)
    tokens = sum(b.tokens for b in probe)
    with torch.enable_grad():
        for b in probe:
            (batch_nll(model, b) / tokens).backward()


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.reshape(-1).double(), b.reshape(-1).double()))


def hutchinson_traces(
    model: nn.Module, names: list[str], probe, config: FeatureConfig
) -> dict[str, float]:
    """Per layer, tr(H_ll)/elements of the probe loss's Hessian, by Hutchinson's estimator
    with Rademacher vectors and finite-difference Hessian-vector products (first-order
    gradients only, so any attention kernel works): v·(g(w + h·v) − g(w))/h.

    Nothing the size of the weights is kept beyond one gradient and the perturbation's
    saved originals: each vector is drawn again from its generator state when needed, and
    v·g(w) is taken for every vector before the perturbed passes (a 1.5B model otherwise
    needs five extra copies of its weights)."""
    req = {n: p.requires_grad for n, p in model.named_parameters()}
    wanted = {id(model.get_submodule(n).weight) for n in names}
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    try:
        ws = _weights(model, names)
        steps = {
            n: config.hutchinson_step * w.detach().float().pow(2).mean().sqrt().item()
            for n, w in ws.items()
        }
        gen = torch.Generator().manual_seed(config.seed + 1)

        def vectors(state=None):
            if state is not None:
                gen.set_state(state)
            for n in names:
                yield n, torch.randint(0, 2, ws[n].shape, generator=gen).float() * 2 - 1

        _probe_grads(model, probe)
        states, at_w = [], []  # per sample: its generator state, v·g(w) per layer
        for _ in range(config.hutchinson_samples):
            states.append(gen.get_state())
            at_w.append({n: _dot(v, ws[n].grad) for n, v in vectors()})
        acc = dict.fromkeys(names, 0.0)
        for state, g0 in zip(states, at_w, strict=True):
            with perturbed(model, ((n, v * steps[n]) for n, v in vectors(state))):
                _probe_grads(model, probe)
            for n, v in vectors(state):
                acc[n] += (_dot(v, ws[n].grad) - g0[n]) / steps[n] / ws[n].numel()
    finally:
        model.zero_grad(set_to_none=True)
        for n, p in model.named_parameters():
            p.requires_grad_(req[n])
    return {n: v / config.hutchinson_samples for n, v in acc.items()}


def format_descriptors(fmt: str, widths: list[int]) -> dict[str, float]:
    """Numbers that describe a format to a predictor: bits per element (scales included),
    log2 of the columns sharing a scale (mean over the layers' widths), non-uniform grid."""
    f = get_format(fmt)
    groups = [min(f.column_group(c), c) for c in widths]
    name = f.name.lower()
    return {
        "bits": float(f.bits_per_element),
        "log2_group": sum(math.log2(g) for g in groups) / len(groups),
        "float_grid": float(name.startswith(("mxfp", "fp", "nf"))),
    }


@torch.no_grad()
def format_features(
    subject: Subject, fmt: str, state: ModelState, config: FeatureConfig
) -> dict[str, Feature]:
    """Per-(model, format) features from the round-to-nearest noise ΔW = Q(W) − W, computed
    one layer at a time (a 1.5B model's noise for every layer at once would be another copy
    of its weights)."""
    model = subject.model
    ws = _weights(model, state.names)
    f = get_format(fmt)

    def noise(n: str) -> torch.Tensor:
        w = ws[n].detach().float()
        return f.run_qdq(w)[0] - w

    t0 = time.perf_counter()
    sig = err = quad = a_sig = a_err = 0.0
    layer_db = []
    t_quad = t_act = 0.0
    for n in state.names:
        w, d = ws[n].detach().float(), noise(n)
        s_n, e_n = w.pow(2).sum().item(), d.pow(2).sum().item()
        sig, err = sig + s_n, err + e_n
        layer_db.append(_db(s_n, e_n))
        if config.landscape:
            t1 = time.perf_counter()
            quad += 0.5 * state.trace[n] * e_n
            t2 = time.perf_counter()
            a_sig += state.input_h[n].energy(w)
            a_err += state.input_h[n].energy(d)
            t_quad, t_act = t_quad + t2 - t1, t_act + time.perf_counter() - t2
    dt = time.perf_counter() - t0 - t_quad - t_act
    desc = format_descriptors(fmt, [w.shape[1] for w in ws.values()])
    feats = {k: Feature(v, 0.0) for k, v in desc.items()}
    feats["sqnr_db"] = Feature(_db(sig, err), dt / 2)
    feats["sqnr_min_db"] = Feature(min(layer_db), dt / 2)
    if not config.landscape:
        return feats
    feats["quadratic_rise"] = Feature(quad, t_quad)
    feats["act_sqnr_db"] = Feature(_db(a_sig, a_err), t_act)
    for a in config.alphas:
        t0 = time.perf_counter()
        with perturbed(model, ((n, a * noise(n)) for n in state.names)):
            rise = mean_nll(model, subject.probe) - state.probe_nll
        feats[f"noise_rise_a{a:g}"] = Feature(rise, time.perf_counter() - t0)
    return feats


def _db(signal: float, noise: float) -> float:
    """10·log10(signal/noise), capped at 200 dB when the noise is zero."""
    if noise <= 0:
        return 200.0
    return min(200.0, 10 * math.log10(max(signal, 1e-30) / noise))


__all__ = [
    "Feature",
    "FeatureConfig",
    "InputGram",
    "ModelState",
    "format_descriptors",
    "format_features",
    "hutchinson_traces",
    "model_features",
    "outlier_stats",
    "perturbed",
    "probe_inputs",
]
