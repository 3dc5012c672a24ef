"""Cost of simulated low precision in training, on CPU: one optimizer step of fp32 beside a QAT
step (weights fake-quantized, straight-through gradient) and a Flexpoint flex16+5 step
(weights, activations and gradients, Autoflex exponents), with frugal's fused kernels and
with its torch reference path — same model, batch, threads and run, interleaved.

    python benchmarks/training_step.py --threads 2 --steps 30

Models: the Flexpoint demo's digits CNN and sort transformer (batch 64) and Whisper tiny.en's
decoder (batch 8 × 64 tokens against fixed encoder states; QAT on its Linears; Flexpoint on
its Linears' weights, inputs and gradients). Prints the median step time, its ratio to fp32,
and the breakdown: time inside quantizers during forward and backward (straight-through
gradients included), the rest of forward + backward, and the optimizer phase (for Flexpoint
it includes quantizing the weight gradients and re-storing the weights in the format).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from frugal.formats import Autoflex, fastpath
from frugal.formats.base import NumberFormat
from frugal.nn import QuantConfig, QuantRule, apply_config
from frugal.train.flexpoint_demo import DigitsCNN, SortTransformer, digits_data, sort_data
from frugal.train.lowprecision import LowPrecisionTrainer

QUANT_SECONDS = [0.0]


def timed_method(cls, name: str) -> None:
    """Wrap cls.name so that the time spent in it adds to QUANT_SECONDS (outermost only)."""
    inner = getattr(cls, name)
    depth = [0]

    def wrapper(*args, **kwargs):
        if depth[0]:
            return inner(*args, **kwargs)
        depth[0] += 1
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            QUANT_SECONDS[0] += time.perf_counter() - t
            depth[0] -= 1

    setattr(cls, name, wrapper)


def instrument() -> None:
    timed_method(NumberFormat, "quantize")
    timed_method(Autoflex, "quantize")
    original = fastpath.pass_within

    def pass_within(*args):
        t = time.perf_counter()
        try:
            return original(*args)
        finally:
            QUANT_SECONDS[0] += time.perf_counter() - t

    fastpath.pass_within = pass_within


def digits_task():
    (x, y), _ = digits_data(0)
    return DigitsCNN(), lambda m: F.cross_entropy(m(x[:64]), y[:64])


def sort_task(fmt: str | None):
    (x, y), _ = sort_data(n_train=64, n_val=1)

    def loss(m):
        logits = m(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    return SortTransformer(fmt=fmt), loss


def whisper_decoder_task(batch: int = 8, tokens: int = 64):
    from frugal.models.whisper import load_whisper

    model = load_whisper("tiny.en").model.model.decoder
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(batch, 1500, model.config.d_model, generator=g)
    ids = torch.randint(0, model.config.vocab_size, (batch, tokens), generator=g)

    def loss(m):
        h = m(input_ids=ids[:, :-1], encoder_hidden_states=enc).last_hidden_state
        logits = F.linear(h, m.embed_tokens.weight)  # tied output projection
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))

    return model, loss


TASKS = ["digits-cnn", "sort-transformer", "tiny.en-decoder"]


def build(task: str, mode: str):
    """(model, loss function, trainer) for one task and mode."""
    torch.manual_seed(0)
    if task == "tiny.en-decoder":
        model, loss = whisper_decoder_task()
    elif task == "digits-cnn":
        model, loss = digits_task()
    else:
        model, loss = sort_task("flex16+5" if mode == "flex16+5" else None)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    if mode.startswith("qat-"):
        apply_config(model, QuantConfig([QuantRule("*", weight=mode[4:])]))
        return model, loss, LowPrecisionTrainer(model, opt, None)
    return model, loss, LowPrecisionTrainer(model, opt, None if mode == "fp32" else mode)


def one_step(model, loss_fn, trainer) -> tuple[float, float, float, float]:
    """Seconds of one step: total, inside quantizers (forward + backward), the rest of
    forward + backward, and the optimizer phase."""
    QUANT_SECONDS[0] = 0.0
    t0 = time.perf_counter()
    trainer.optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model)
    loss.backward()
    t1 = time.perf_counter()
    q_fb = QUANT_SECONDS[0]
    trainer.quantize_grads()
    trainer.optimizer.step()
    trainer.store()
    t2 = time.perf_counter()
    return t2 - t0, q_fb, t1 - t0 - q_fb, t2 - t1


def measure(task: str, modes: list[str], steps: int) -> dict[tuple[str, str], dict]:
    """Every (mode, path) of one task, built first, then stepped in turn — step i of each
    configuration follows step i of the others, so the machine's drift hits all alike."""
    configs = [("fp32", "-")] + [(m, p) for m in modes for p in ("fused", "torch")]
    built = {}
    for mode, path in configs:
        fastpath.set_kernels(path != "torch")
        built[(mode, path)] = build(task, mode)
    rows: dict[tuple[str, str], list] = {c: [] for c in configs}
    for i in range(steps + 3):
        for c in configs:
            fastpath.set_kernels(c[1] != "torch")
            r = one_step(*built[c])
            if i >= 3:  # warm-up: first calls compile or load kernels
                rows[c].append(r)
    fastpath.set_kernels(True)
    out = {}
    for c, rs in rows.items():
        med = [1e3 * statistics.median(r[k] for r in rs) for k in range(4)]
        out[c] = {"step_ms": med[0], "quant_ms": med[1], "fwd_bwd_ms": med[2], "opt_ms": med[3]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--modes", nargs="+", default=["qat-mxint4", "qat-int4_g128", "flex16+5"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    instrument()
    results = []
    print(f"{args.threads} threads, torch {torch.__version__}, median of {args.steps} steps")
    head = (
        f"{'model':18s} {'mode':14s} {'path':9s} {'step ms':>8s} {'x fp32':>7s} "
        f"{'quantize':>9s} {'fwd+bwd':>8s} {'optim.':>7s}"
    )
    print(head)
    print("-" * len(head))
    for task in args.tasks:
        runs = measure(task, args.modes, args.steps)
        fp32 = runs[("fp32", "-")]["step_ms"]
        for (mode, path), r in runs.items():
            r.update(task=task, mode=mode, path=path, ratio=r["step_ms"] / fp32)
            results.append(r)
            print(
                f"{task:18s} {mode:14s} {path:9s} {r['step_ms']:8.2f} {r['ratio']:7.2f} "
                f"{r['quant_ms']:9.2f} {r['fwd_bwd_ms']:8.2f} {r['opt_ms']:7.2f}"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "rows": results}, indent=1))


if __name__ == "__main__":
    main()
