"""Quantize-dequantize throughput on CPU: frugal's formats beside microsoft/microxcaling's
reference MX emulation, torchao's MX (where it runs on CPU), torch's native fp8 cast, and the
ceiling of a plain tensor copy — same tensor, same threads, same run, interleaved.

    git clone https://github.com/microsoft/microxcaling /tmp/microxcaling   # outside the repo
    python benchmarks/formats.py --microxcaling /tmp/microxcaling --threads 2 [--compile]

Prints ms per call (median), GB/s (4 bytes read + 4 written per element), the ratio to
microxcaling, the fraction of copy bandwidth, and whether results are bit-identical.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from frugal.formats import get_format, set_compile

FORMATS = ["mxfp4", "mxint8", "fp8_e4m3", "int4_g128", "flex16+5"]
MX_NAMES = {"mxfp4": "fp4_e2m1", "mxint8": "int8", "fp8_e4m3": "fp8_e4m3"}  # microxcaling


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


def native_fp8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-448, 448).to(torch.float8_e4m3fn).float()


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
        s = {"frugal": f.quantize}
        if name in ref:
            s["microxcaling"] = ref[name]
        if name in tao:
            s["torchao"] = tao[name]
        if name == "fp8_e4m3":
            s["torch .to(fp8)"] = native_fp8
        systems[name] = s
    copy = {"copy": lambda t: t.clone()}

    compiled = {}
    if args.compile:
        set_compile(True)
        for name in FORMATS:
            f = get_format(name)
            if f.compilable:
                t0 = time.perf_counter()
                f.quantize(x)  # compile
                compiled[name] = time.perf_counter() - t0
                systems[name]["frugal compiled"] = f.quantize
        set_compile(False)

    identical = {}
    for name, s in systems.items():
        base = get_format(name).quantize(x)
        for sys_name, fn in s.items():
            if sys_name in ("microxcaling", "torchao", "torch .to(fp8)"):
                identical[(name, sys_name)] = bool(torch.equal(fn(x), base))
        if "frugal compiled" in s:
            set_compile(True)
            identical[(name, "frugal compiled")] = bool(torch.equal(s["frugal compiled"](x), base))
            set_compile(False)

    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        times.setdefault(("copy", "copy"), []).append(timed(copy["copy"], x))
        for name, s in systems.items():
            for sys_name, fn in s.items():
                set_compile(sys_name == "frugal compiled")
                times.setdefault((name, sys_name), []).append(timed(fn, x))
                set_compile(False)

    def med(key):
        v = sorted(times[key])
        return v[len(v) // 2]

    copy_ms = med(("copy", "copy"))
    print(
        f"\n{x.numel() / 1e6:.1f}M fp32 elements, {args.threads} threads, torch {torch.__version__}"
        f"; copy {copy_ms:.1f} ms = {gb / copy_ms * 1e3:.1f} GB/s"
    )
    head = (
        f"{'format':10s} {'system':16s} {'ms':>9s} {'GB/s':>7s} {'x microxcaling':>15s} "
        f"{'% of copy BW':>13s} {'bit-identical to frugal':>24s}"
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
                "copy_bw_fraction": copy_ms / ms,
                "identical": identical.get((name, sys_name)),
            }
            rows.append(row)
            sp = f"{row['speedup_vs_microxcaling']:.2f}" if ref_ms else "-"
            ident = {None: "-", True: "yes", False: "NO"}[row["identical"]]
            print(
                f"{name:10s} {sys_name:16s} {ms:9.1f} {row['gb_s']:7.2f} {sp:>15s} "
                f"{100 * row['copy_bw_fraction']:12.1f}% {ident:>24s}"
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
