"""Quantize-dequantize throughput on CPU for every catalogue format: frugal's default (fused
kernels) and its torch reference path beside microsoft/microxcaling's emulation (its MX and
element formats), torchao's MX (where it runs on CPU), torch's native casts, and a plain
tensor copy (x.clone(), the same allocation and traffic) — same tensor, threads and run,
interleaved.

    git clone https://github.com/microsoft/microxcaling /tmp/microxcaling   # outside the repo
    python benchmarks/formats.py --microxcaling /tmp/microxcaling --threads 2 [--compile]

Prints ms per call (median), GB/s (4 bytes read + 4 written per element), the ratio to
microxcaling, the fraction of copy bandwidth, and whether results are bit-identical to
frugal's reference path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from frugal.formats import CATALOGUE, fastpath, get_format, set_compile

FORMATS = list(CATALOGUE)
MX_NAMES = {  # ours -> microxcaling's element format
    "mxint8": "int8",
    "mxfp8": "fp8_e4m3",
    "mxfp8_e5m2": "fp8_e5m2",
    "mxfp6": "fp6_e2m3",
    "mxfp6_e3m2": "fp6_e3m2",
    "mxfp4": "fp4_e2m1",
    "fp8_e4m3": "fp8_e4m3",
    "fp8_e5m2": "fp8_e5m2",
    "fp6_e3m2": "fp6_e3m2",
    "fp6_e2m3": "fp6_e2m3",
    "fp4_e2m1": "fp4_e2m1",
    "fp16": "fp16",
    "bf16": "bf16",
}
NATIVE = {  # torch casts (saturating first, as frugal does)
    "fp16": (torch.float16, 65504.0),
    "bf16": (torch.bfloat16, None),
    "fp8_e4m3": (torch.float8_e4m3fn, 448.0),
    "fp8_e5m2": (torch.float8_e5m2, 57344.0),
}


def load_microxcaling(path: Path | None) -> dict[str, Callable]:
    if path is None or not (path / "mx" / "mx_ops.py").exists():
        print(
            f"microxcaling: not found at {path} (pass --microxcaling PATH to a checkout); "
            "its columns are absent"
        )
        return {}
    sys.path.insert(0, str(path))
    from mx.elemwise_ops import _quantize_elemwise_core
    from mx.formats import _get_format_params
    from mx.mx_ops import _quantize_mx

    out = {}
    for ours, theirs in MX_NAMES.items():
        if ours.startswith("mx"):
            out[ours] = lambda x, t=theirs: _quantize_mx(
                x, 8, t, block_size=32, axes=[-1], round="even", custom_cuda=False
            )
        else:
            ebits, mbits, _, max_norm, _ = _get_format_params(theirs)
            out[ours] = lambda x, e=ebits, m=mbits, mx=max_norm: _quantize_elemwise_core(
                x, m, e, mx, round="even", saturate_normals=True, allow_denorm=True
            )
    return out


def load_torchao() -> dict[str, Callable]:
    try:
        from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
    except Exception as exc:  # torchao absent or broken on this machine
        print(f"torchao: unavailable ({type(exc).__name__}); its columns are absent")
        return {}
    fp4 = getattr(torch, "float4_e2m1fn_x2", "fp4_e2m1")

    def mx(x, elem):
        scale, data = to_mx(x, elem, 32)
        return to_dtype(data, scale, elem, 32, torch.float32)

    return {"mxfp4": lambda x: mx(x, fp4), "mxfp8": lambda x: mx(x, torch.float8_e4m3fn)}


def native_cast(name: str) -> Callable:
    dtype, vmax = NATIVE[name]
    if vmax is None:
        return lambda x: x.to(dtype).float()
    return lambda x: x.clamp(-vmax, vmax).to(dtype).float()


def frugal_reference(f) -> Callable:
    """The format's torch reference path (fused kernels off)."""

    def run(x):
        fastpath.set_kernels(False)
        try:
            return f.quantize(x)
        finally:
            fastpath.set_kernels(True)

    return run


def timed(fn: Callable, x: torch.Tensor) -> float:
    t = time.perf_counter()
    fn(x)
    return 1e3 * (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--microxcaling", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd kernels")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.rows, args.cols)
    gb = 8 * x.numel() / 1e9

    ref = load_microxcaling(args.microxcaling)
    tao = load_torchao()
    systems: dict[str, dict[str, Callable]] = {}
    for name in FORMATS:
        f = get_format(name)
        s = {"frugal": f.quantize, "frugal torch": frugal_reference(f)}
        if name in ref:
            s["microxcaling"] = ref[name]
        if name in tao:
            s["torchao"] = tao[name]
        if name in NATIVE:
            s["torch cast"] = native_cast(name)
        systems[name] = s
    copy = {"copy": lambda t: t.clone()}

    compiled = {}
    if args.compile:  # torch.compile of the reference (the fused kernels switched off)
        fastpath.set_kernels(False)
        set_compile(True)
        for name in FORMATS:
            f = get_format(name)
            if f.compilable:
                t0 = time.perf_counter()
                f.quantize(x)  # compile
                compiled[name] = time.perf_counter() - t0
                systems[name]["frugal compiled"] = f.quantize
        set_compile(False)
        fastpath.set_kernels(True)

    def call(sys_name: str, fn: Callable):
        if sys_name != "frugal compiled":
            return fn(x)
        fastpath.set_kernels(False)
        set_compile(True)
        try:
            return fn(x)
        finally:
            set_compile(False)
            fastpath.set_kernels(True)

    identical = {}
    for name, s in systems.items():
        base = s["frugal torch"](x)
        for sys_name, fn in s.items():
            if sys_name != "frugal torch":
                out = call(sys_name, fn)
                an, bn = out.isnan(), base.isnan()
                identical[(name, sys_name)] = bool(
                    torch.equal(an, bn) and torch.equal(out[~an], base[~bn])
                )

    # A copy is timed beside each format's calls (its cost moves with the machine's page
    # allocation state, e.g. huge pages), and each format is compared with its own copies.
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for name, s in systems.items():
            copy_ms = timed(copy["copy"], x)
            times.setdefault((name, "copy"), []).append(copy_ms)
            times.setdefault(("copy", "copy"), []).append(copy_ms)
            for sys_name, fn in s.items():
                t = time.perf_counter()
                call(sys_name, fn)
                times.setdefault((name, sys_name), []).append(1e3 * (time.perf_counter() - t))

    def med(key):
        v = sorted(times[key])
        return v[len(v) // 2]

    copy_ms = med(("copy", "copy"))
    print(
        f"\n{x.numel() / 1e6:.1f}M fp32 elements, {args.threads} threads, torch {torch.__version__}"
        f"; copy {copy_ms:.1f} ms = {gb / copy_ms * 1e3:.1f} GB/s (median of all; each format is"
        " compared with the copies timed beside it)"
    )
    head = (
        f"{'format':14s} {'system':16s} {'ms':>9s} {'GB/s':>7s} {'x microxcaling':>15s} "
        f"{'% of copy BW':>13s} {'bit-identical to reference':>27s}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for name, s in systems.items():
        ref_ms = med((name, "microxcaling")) if "microxcaling" in s else None
        for sys_name in s:
            ms = med((name, sys_name))
            row = {
                "format": name,
                "system": sys_name,
                "ms": ms,
                "gb_s": gb / ms * 1e3,
                "speedup_vs_microxcaling": ref_ms / ms if ref_ms else None,
                "copy_ms": med((name, "copy")),
                "copy_bw_fraction": med((name, "copy")) / ms,
                "identical": identical.get((name, sys_name)),
            }
            rows.append(row)
            sp = f"{row['speedup_vs_microxcaling']:.2f}" if ref_ms else "-"
            ident = {None: "-", True: "yes", False: "NO"}[row["identical"]]
            print(
                f"{name:14s} {sys_name:16s} {ms:9.1f} {row['gb_s']:7.2f} {sp:>15s} "
                f"{100 * row['copy_bw_fraction']:12.1f}% {ident:>27s}"
            )
    if compiled:
        print(
            "compile time (s, first call): "
            + ", ".join(f"{k} {v:.0f}" for k, v in compiled.items())
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"rows": rows, "copy_ms": copy_ms, "compile_s": compiled, "threads": args.threads},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
