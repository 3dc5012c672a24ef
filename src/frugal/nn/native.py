"""Quantized Linears on real low-precision CPU kernels, where this torch has a fast one.

Measured on this project's CPU (AVX-512 Xeon, 2 threads, torch 2.13): `torch._int_mm`
(int8 × int8 → int32) runs the 51,864 × 384 vocabulary projection of one decoding step in
0.45 ms against 1.45 ms for fp32 `F.linear`, and a 1500-frame encoder Linear in 1.3 ms
against 5.3 ms. `_weight_int8pack_mm` (8.4 ms) and fp8 `_scaled_mm` (109 ms) are slower
than fp32. `_weight_int4pack_mm_for_cpu` is slow with fp32 inputs (0.57 ms for a 1536 × 384
layer that fp32 does in 0.03 ms) but not with bf16 inputs (0.024 ms; the vocabulary 0.63 ms):
it computes with bf16 inputs and bf16 scale/zero pairs, so it cannot reproduce frugal's int4
values (fp16 scales) exactly and is not used yet. So only int8 weights run natively: as
CTranslate2's int8 does, each input row is quantized to int8 at run time and the integer
products are summed exactly in int32. Every other format stays simulated (fp32 values on its
grid).

Not every CPU has a fast int8 GEMM: on an AMD EPYC (Zen 3, AVX2, no VNNI; torch 2.13)
`torch._int_mm` takes 540 ms for a 1500 × 384 × 1536 encoder Linear that fp32 does in 21 ms,
and 28 ms for the vocabulary against 22 ms. So the first int8 product of a process times both
on a small case (`int8_gemm_backend`) and, where the int8 kernel loses, computes the same
integer products exactly in fp32 GEMMs instead (`int8_matmul`): every result is bit-identical
either way. FRUGAL_INT8_GEMM=native|emulated overrides the choice. A decoding step's few
rows go to a numba kernel that reads the int8 codes themselves (frugal.nn.int8_rows) where a
probe finds it faster than the GEMM path (`few_rows_backend`; FRUGAL_INT8_FEW_ROWS=kernel|gemm
overrides): on that Zen 3, 2 rows × 16384 × 384 in 1.4 ms against 9.3 ms emulated."""

from __future__ import annotations

import functools

import torch
from torch import nn

from frugal.formats import get_format
from frugal.formats.integer import IntFormat, _fp16_scale
from frugal.formats.packing import Packed, group_codes, pack
from frugal.nn.kernel_timing import best_ms, forced_choice

INT8_KERNEL = "int8 GEMM (torch._int_mm, or exact in fp32 where it is slow), int8 inputs per row"


def native_kernel(fmt: str) -> str | None:
    """The CPU kernel a weight in `fmt` runs on, or None when it is simulated (fp32 values
    on the format's grid)."""
    f = get_format(fmt)
    if (
        isinstance(f, IntFormat)
        and f.bits == 8
        and f.symmetric
        and f.granularity in ("channel", "tensor")
    ):
        return INT8_KERNEL
    return None


def int8_codes(p: Packed) -> tuple[torch.Tensor, torch.Tensor]:
    """The signed int8 codes (in `p`'s shape) and per-row float32 scales of a packed int8
    (per tensor or per channel, symmetric) weight: value = code · scale."""
    if native_kernel(p.format) is None or len(p.shape) < 2:
        raise ValueError(f"{p.format} weights have no int8 kernel")
    codes = (group_codes(p).int() - 128).to(torch.int8).reshape(p.shape)
    scales = p.scales.float()
    return codes, scales.expand(p.shape[0]) if scales.numel() == 1 else scales


INT8_GEMM_ENV = "FRUGAL_INT8_GEMM"
# |int8 · int8| <= 2^14, so any partial sum of at most 2^10 such products is an integer of at
# most 2^24 in magnitude: exact in float32 whatever order the GEMM sums in
EXACT_FP32_TERMS = 1024
# the emulated backend keeps a float32 copy of an Int8Linear's codes only once it sees an input
# of fewer rows than this (converting per call costs more than the GEMM there)
CACHE_BELOW_ROWS = 64


@functools.cache
def int8_gemm_timings() -> tuple[float, float]:
    """(torch._int_mm, fp32 F.linear) milliseconds for one 64 × 384 × 1536 product here, best
    of three after a warm-up; (inf, ...) when this torch has no int8 GEMM."""
    a = torch.randint(-127, 128, (64, 384), generator=torch.Generator().manual_seed(0))
    w = torch.randint(-127, 128, (1536, 384), generator=torch.Generator().manual_seed(1))
    a8, w8t, af, wf = a.to(torch.int8), w.to(torch.int8).t(), a.float(), w.float()
    try:
        native = best_ms(lambda: torch._int_mm(a8, w8t))
    except (RuntimeError, AttributeError):
        native = float("inf")
    return native, best_ms(lambda: nn.functional.linear(af, wf))


def int8_gemm_backend() -> str:
    """ "native" (torch._int_mm) where it beats fp32 on this CPU, else "emulated" (the same
    integer products in fp32 GEMMs, `int8_matmul`); FRUGAL_INT8_GEMM overrides."""
    forced = forced_choice(INT8_GEMM_ENV, ("native", "emulated"))
    if forced:
        return forced
    native, fp32 = int8_gemm_timings()
    return "native" if native < fp32 else "emulated"


FEW_ROWS_ENV = "FRUGAL_INT8_FEW_ROWS"
# inputs of at most this many rows may go to the few-row kernel (frugal.nn.int8_rows): its
# time grows with the rows (~0.9 ms per row over the vocabulary on a Zen 3 core) while a
# GEMM's hardly does, so past ~8 rows the GEMM wins
FEW_ROWS = 8


@functools.cache
def few_rows_timings() -> tuple[float, float]:
    """(few-row int8 kernel, int8 GEMM path) milliseconds for one 2 × 384 × 16384 product
    here, best of three after a warm-up (which compiles the kernel or loads it from its
    cache); (inf, ...) when numba is missing."""
    from frugal.nn import int8_rows

    g = torch.Generator().manual_seed(2)
    q = torch.randint(-127, 128, (2, 384), generator=g, dtype=torch.int8)
    codes = torch.randint(-127, 128, (16384, 384), generator=g, dtype=torch.int8)
    cf = codes.float() if int8_gemm_backend() == "emulated" else None
    gemm = best_ms(lambda: _int8_gemm(q, codes, cf))
    if not int8_rows.available():
        return float("inf"), gemm
    try:
        return best_ms(lambda: int8_rows.int8_rows_matmul(q, codes)), gemm
    except Exception:  # a numba compile failure: the GEMM paths stay
        return float("inf"), gemm


def few_rows_backend() -> str:
    """ "kernel" (frugal.nn.int8_rows) where it beats the int8 GEMM path for a decoding
    step's few rows on this CPU, else "gemm"; FRUGAL_INT8_FEW_ROWS overrides. Consulted only
    where the GEMM path is emulated (torch._int_mm slow here): the probe loads numba."""
    forced = forced_choice(FEW_ROWS_ENV, ("kernel", "gemm"))
    if forced:
        return forced
    kernel, gemm = few_rows_timings()
    return "kernel" if kernel < gemm else "gemm"


def few_rows_kernel(rows: int) -> bool:
    """True when an int8 product of `rows` input rows goes to the few-row kernel here (the
    GEMM backend is emulated and the kernel beat it); the vocabulary screen then runs fused
    in it (frugal.nn.int8_rows.screen)."""
    return rows <= FEW_ROWS and int8_gemm_backend() == "emulated" and few_rows_backend() == "kernel"


def fast_int8_rows(rows: int) -> bool:
    """True when an int8 product of `rows` input rows runs on a kernel that reads int8
    weights here (torch's int8 GEMM where it is fast, or the few-row kernel): then a weight
    read as int8 costs a quarter of its float32 bytes."""
    return int8_gemm_backend() == "native" or few_rows_kernel(rows)


def int8_matmul(q: torch.Tensor, codes: torch.Tensor, codes_float: torch.Tensor | None = None):
    """q (M, K) int8 times codes (N, K) int8 transposed: the exact int32 products (M, N), on
    the few-row kernel for M <= FEW_ROWS where the GEMM backend is emulated and the kernel is
    faster (`few_rows_backend`), else on the GEMM backend `int8_gemm_backend` picks.
    `codes_float` is codes as float (a cached copy the emulated path reuses instead of
    converting every call)."""
    if few_rows_kernel(q.shape[0]):
        from frugal.nn.int8_rows import int8_rows_matmul

        return int8_rows_matmul(q, codes)
    return _int8_gemm(q, codes, codes_float)


def _int8_gemm(q: torch.Tensor, codes: torch.Tensor, codes_float: torch.Tensor | None):
    """`int8_matmul` on the GEMM backend `int8_gemm_backend` picks."""
    if int8_gemm_backend() == "native":
        return torch._int_mm(q, codes.t())
    # float64 when float32 matmuls may round their inputs (TF32 / bf16 passes)
    dtype = torch.float32 if torch.get_float32_matmul_precision() == "highest" else torch.float64
    cf = codes.to(dtype) if codes_float is None or codes_float.dtype != dtype else codes_float
    qf = q.to(dtype)
    k = q.shape[1]
    if dtype == torch.float64 or k <= EXACT_FP32_TERMS:
        return (qf @ cf.t()).to(torch.int32)
    acc = None
    for k0 in range(0, k, EXACT_FP32_TERMS):
        part = (qf[:, k0 : k0 + EXACT_FP32_TERMS] @ cf[:, k0 : k0 + EXACT_FP32_TERMS].t()).to(
            torch.int32
        )
        acc = part if acc is None else acc.add_(part)
    return acc


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes and float32 scales (N, 1) of each row of float32 `x` (N, K): symmetric,
    scale fp16(amax / 127), exactly the simulated input format int8_g<K>."""
    scale = _fp16_scale(x.abs().amax(-1, keepdim=True) / 127)
    return torch.clamp(torch.round(x / scale), -128, 127).to(torch.int8), scale


class Int8Linear(nn.Module):
    """y = x Wᵀ + b with W held as int8 codes and one float32 scale per output row.

    The input is quantized per row (`quantize_rows`), the products are summed in int32 by
    `torch._int_mm` (exact) and scaled once: the result equals, up to that final scaling's
    float32 rounding, the simulated Linear with weight format int8_pc and input format
    int8_g<in_features> evaluated in exact arithmetic."""

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        if codes.dtype != torch.int8 or codes.dim() != 2:
            raise ValueError("Int8Linear needs (out, in) int8 codes")
        self.out_features, self.in_features = codes.shape
        self.register_buffer("codes", codes.contiguous())
        self.register_buffer("scales", scales.float().reshape(-1))
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.formats = {"weight": "int8_pc", "input": f"int8_g{self.in_features}", "grad": None}

    @classmethod
    def from_packed(cls, p: Packed, bias: torch.Tensor | None) -> Int8Linear:
        """From an int8 (per tensor or per channel, symmetric) packed weight."""
        if len(p.shape) != 2:
            raise ValueError(f"Int8Linear needs a 2-D weight, not {p.shape}")
        return cls(*int8_codes(p), bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str = "int8_pc") -> Int8Linear:
        """From a Linear whose weight is already on `fmt`'s grid (as RTN/GPTQ/QAT leave it);
        raises NotPackableError when it is not."""
        return cls.from_packed(pack(linear.weight, fmt), linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        """The weight's float32 values (exactly the simulated int8 values)."""
        return self.codes.float() * self.scales[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1]).float()
        q, sx = quantize_rows(flat)
        # many rows (an encoder window): converting the codes per call costs ~1% of the GEMM,
        # and keeps int8 in memory; a few rows: the float copy, made once, saves the conversion
        # (unless the few-row kernel takes them: it reads the int8 codes)
        cf = self._codes_float(flat.shape[0])
        y = int8_matmul(q, self.codes, cf).float().mul_(sx).mul_(self.scales)
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def _codes_float(self, rows: int) -> torch.Tensor | None:
        """The codes as float32 for the emulated backend, made once (4 bytes per weight beside
        the int8 codes) for inputs of fewer than CACHE_BELOW_ROWS rows; None on the native
        backend, for more rows, or for rows the few-row kernel takes."""
        if rows >= CACHE_BELOW_ROWS or fast_int8_rows(rows):
            return None
        cached = self.__dict__.get("_cf")
        if cached is None or cached[0] is not self.codes:
            cached = self.__dict__["_cf"] = (self.codes, self.codes.float())
        return cached[1]

    @staticmethod
    def cat(parts: list[Int8Linear]) -> Int8Linear:
        """One Int8Linear computing the given ones' outputs side by side (fused q/k/v)."""
        biases = [p.bias if p.bias is not None else torch.zeros(p.out_features) for p in parts]
        return Int8Linear(
            torch.cat([p.codes for p in parts]),
            torch.cat([p.scales for p in parts]),
            torch.cat(biases),
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 kernel"


def to_native(
    model: nn.Module, modules: dict[str, str], packed: dict[str, Packed] | None = None
) -> dict[str, str]:
    """Swap, in place, each named Linear whose format has a kernel (`native_kernel`) for its
    native module, built from its packed weight (`packed`, by parameter name) when given.
    `modules` maps module name -> weight format (a quantization record's `modules`).
    Returns {module: kernel or "simulated"}."""
    done = {}
    for name, fmt in modules.items():
        kernel = native_kernel(fmt)
        module = model.get_submodule(name)
        if kernel is None or type(module) is not nn.Linear:
            done[name] = "simulated"
            continue
        p = (packed or {}).get(f"{name}.weight")
        native = (
            Int8Linear.from_packed(p, module.bias)
            if p is not None
            else Int8Linear.from_linear(module, fmt)
        )
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, native)
        done[name] = kernel
    return done


__all__ = ["INT8_KERNEL", "Int8Linear", "int8_codes", "native_kernel", "quantize_rows", "to_native"]
