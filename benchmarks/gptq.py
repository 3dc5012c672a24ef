"""GPTQ wall time, peak memory and layer error: frugal beside IST-DASLab/gptq's reference
implementation on the same inputs, on CPU.

    git clone https://github.com/IST-DASLab/gptq /tmp/gptq        # outside the repo
    python benchmarks/gptq.py --reference /tmp/gptq --threads 2

1. One 4096×4096 Linear, 128 calibration samples × 2048 vectors (seeded Gaussian inputs
   with a low-rank correlated part): Hessian accumulation + quantization, each
   implementation in its own process (peak RSS measured there).
2. All Linears of Whisper's encoder/decoder blocks (default: base), calibrated on built-in
   utterances: frugal's layer-by-layer driver with frugal's solver, then with the reference's
   solver plugged in (same Hessians, same order), each in its own process: the solvers' time,
   peak RSS and errors.

The grid is the reference's asymmetric 4-bit per-group-of-128 quantizer; frugal runs it as
int4_g128_asym (the same grid, with scales stored in fp16). The reference calls
torch.cuda.synchronize(), which CPU-only torch lacks; it is replaced by a no-op here.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from frugal.formats import get_format
from frugal.quantize import GPTQConfig, Hessian, gptq_weight, output_error
from frugal.quantize.gptq import GPTQResult

FORMAT = "int4_g128_asym"
BITS, GROUP = 4, 128


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_reference(path: Path | None):
    """The reference's gptq and quant modules, or None (with a message) when absent."""
    if path is None or not (path / "gptq.py").is_file():
        print(
            f"reference: IST-DASLab/gptq not found at {path} (pass --reference PATH to a "
            "checkout); its columns are absent"
        )
        return None
    sys.path.insert(0, str(path))
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *a, **k: None  # the reference syncs unconditionally
    import gptq as ref_gptq
    import quant as ref_quant

    return ref_gptq, ref_quant


def reference_solver(ref):
    """frugal's solver signature around the reference's GPTQ.fasterquant (its own grid)."""
    ref_gptq, ref_quant = ref

    def solve(weight, hessian, fmt, config: GPTQConfig, name: str) -> GPTQResult:
        layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        layer.weight.data = weight.detach().clone().float()
        g = ref_gptq.GPTQ(layer)
        g.H = hessian.clone()
        g.nsamples = 1
        g.quantizer = ref_quant.Quantizer()
        g.quantizer.configure(BITS, perchannel=True, sym=False, mse=False)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            g.fasterquant(blocksize=config.block, percdamp=config.damp, groupsize=GROUP)
        q = layer.weight.data
        return GPTQResult(q, config.damp, 0, output_error(q - weight.float(), hessian))

    return solve


def make_inputs(samples: int, seq: int, dim: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(64, dim, generator=g) / 4
    scale = torch.exp(torch.randn(dim, generator=g) / 2)
    return [
        (torch.randn(seq, dim, generator=g) + torch.randn(seq, 64, generator=g) @ mix) * scale
        for _ in range(samples)
    ]


def worker_layer(args) -> dict:
    """One implementation on one layer (run in its own process)."""
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed + 1)
    w = torch.randn(args.rows, args.cols, generator=g) * 0.02
    inputs = make_inputs(args.samples, args.seq, args.cols, args.seed)
    base_rss = peak_rss_mb()
    cfg = GPTQConfig()
    if args.worker == "ours":
        t0 = time.perf_counter()
        h = Hessian(args.cols)
        for x in inputs:
            h.add(x)
        hm = h.matrix
        t1 = time.perf_counter()
        res = gptq_weight(w, hm, get_format(FORMAT), cfg)
        t2 = time.perf_counter()
        q = res.weight
    else:
        ref_gptq, ref_quant = load_reference(Path(args.reference))
        layer = torch.nn.Linear(args.cols, args.rows, bias=False)
        layer.weight.data = w.clone()
        t0 = time.perf_counter()
        gq = ref_gptq.GPTQ(layer)
        for x in inputs:
            gq.add_batch(x[None], None)
        hm = gq.H.clone() / args.seq  # it averages over samples of `seq` vectors; we per vector
        t1 = time.perf_counter()
        gq.quantizer = ref_quant.Quantizer()
        gq.quantizer.configure(BITS, perchannel=True, sym=False, mse=False)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            gq.fasterquant(blocksize=cfg.block, percdamp=cfg.damp, groupsize=GROUP)
        t2 = time.perf_counter()
        q = layer.weight.data
    return {
        "hessian_s": t1 - t0,
        "quantize_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_rss_mb": peak_rss_mb(),
        "inputs_rss_mb": base_rss,
        "error": output_error(q - w, hm),
    }


def run_workers(impls: list[str]) -> list[dict]:
    """Each implementation in a fresh process (for its own peak RSS)."""
    rows = []
    for impl in impls:
        cmd = [sys.executable, __file__, "--worker", impl, *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr[-2000:])
            raise SystemExit(f"worker {impl} failed")
        name = impl.removeprefix("whisper-")
        rows.append({"impl": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


def worker_whisper(args) -> dict:
    """GPTQ of every block Linear of a Whisper, with one solver (run in its own process)."""
    from frugal.data import builtin_speech
    from frugal.models import load_whisper
    from frugal.nn import QuantConfig
    from frugal.quantize.sequential import gptq_model
    from frugal.tasks.asr.calibration import WHISPER_BLOCKS, WHISPER_STACKS, teacher_batches

    torch.set_num_threads(args.threads)
    asr = load_whisper(args.whisper)
    utts = builtin_speech().take(args.whisper_examples, seed=args.seed)
    batches = teacher_batches(asr, utts, 4)
    base_rss = peak_rss_mb()
    if args.worker == "whisper-ours":
        solver = gptq_weight
    else:
        solver = reference_solver(load_reference(Path(args.reference)))
    spent = []

    def timed(*a, **k):
        t = time.perf_counter()
        r = solver(*a, **k)
        spent.append(time.perf_counter() - t)
        return r

    config = QuantConfig.weights_only(FORMAT, WHISPER_BLOCKS)
    t0 = time.perf_counter()
    run = gptq_model(asr.model, config, batches, GPTQConfig(), WHISPER_STACKS, solver=timed)
    return {
        "total_s": time.perf_counter() - t0,
        "solver_s": sum(spent),
        "layers": len(run.layers),
        "error_sum": sum(r.error for r in run.layers),
        "peak_rss_mb": peak_rss_mb(),
        "loaded_rss_mb": base_rss,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reference", type=Path, help="checkout of IST-DASLab/gptq")
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--cols", type=int, default=4096)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--whisper", default="base", help="Whisper checkpoint ('' to skip)")
    p.add_argument("--whisper-examples", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument(
        "--worker",
        choices=["ours", "ref", "whisper-ours", "whisper-ref"],
        help=argparse.SUPPRESS,
    )
    args = p.parse_args(argv)
    if args.worker:
        work = worker_whisper if args.worker.startswith("whisper") else worker_layer
        print(json.dumps(work(args)))
        return
    ref = load_reference(args.reference)
    print(f"GPTQ {FORMAT} (reference: asym 4-bit, group {GROUP}); {args.threads} threads")
    layer = run_workers(["ours", "ref"] if ref else ["ours"])
    print(f"\n## One {args.rows}x{args.cols} Linear, {args.samples}x{args.seq} calibration vectors")
    print(
        "| impl | Hessian s | quantize s | total s | × ref | peak RSS MB (inputs) | error "
        "| error / ref |"
    )
    print("|---|---|---|---|---|---|---|---|")
    refrow = layer[1] if len(layer) > 1 else None
    for r in layer:
        ratio = f"{r['total_s'] / refrow['total_s']:.2f}" if refrow else "–"
        eratio = f"{r['error'] / refrow['error']:.4f}" if refrow else "–"
        print(
            f"| {r['impl']} | {r['hessian_s']:.1f} | {r['quantize_s']:.2f} | {r['total_s']:.1f} "
            f"| {ratio} | {r['peak_rss_mb']:.0f} ({r['inputs_rss_mb']:.0f}) | {r['error']:.5g} "
            f"| {eratio} |"
        )
    results = {"layer": layer, "format": FORMAT}
    if args.whisper:
        wrows = run_workers(["whisper-ours", "whisper-ref"] if ref else ["whisper-ours"])
        results["whisper"] = wrows
        print(
            f"\n## All block Linears of Whisper {args.whisper}, {args.whisper_examples} "
            "built-in utterances (same driver and Hessians; solver swapped)"
        )
        print(
            "| impl | total s | solver s | solver × ref | peak RSS MB (loaded) | layers "
            "| Σ layer error | error / ref |"
        )
        print("|---|---|---|---|---|---|---|---|")
        wref = wrows[1] if len(wrows) > 1 else None
        for r in wrows:
            sr = f"{r['solver_s'] / wref['solver_s']:.2f}" if wref else "–"
            er = f"{r['error_sum'] / wref['error_sum']:.4f}" if wref else "–"
            print(
                f"| {r['impl']} | {r['total_s']:.1f} | {r['solver_s']:.1f} | {sr} | "
                f"{r['peak_rss_mb']:.0f} ({r['loaded_rss_mb']:.0f}) | {r['layers']} | "
                f"{r['error_sum']:.5g} | {er} |"
            )
    if args.out:
        from frugal.provenance import versions

        args.out.write_text(json.dumps({**results, "versions": versions()}, indent=1))


if __name__ == "__main__":
    main()
