"""What this installation is and what it runs on: versions, threads, the CPU's capabilities
as torch sees them, installed models and extras, native kernels. Paste it into a bug report."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from importlib import metadata

from frugal.provenance import cpu_flags, cpu_name

# The distributions whose versions change what frugal computes or how fast (import name
# not needed: versions come from the installed metadata, nothing is imported).
KEY_PACKAGES = (
    "torch",
    "numpy",
    "numba",
    "transformers",
    "tokenizers",
    "safetensors",
    "scipy",
    "scikit-learn",
    "pymoo",
    "ml-dtypes",
    "soundfile",
    "av",
    "silero-vad",
    "jiwer",
)
# optional extras: (extra name, distributions it needs, what it gives)
EXTRAS = (
    ("hf", ("transformers",), "causal LMs, generate() as Whisper's reference decoder"),
    ("bench", ("faster-whisper", "ctranslate2"), "the faster-whisper anchor, CT2 comparisons"),
    ("ray", ("ray",), "measurements on a Ray cluster"),
    ("optuna", ("optuna",), "Optuna sampler and export"),
    ("llm", ("transformers", "gguf"), "packaged GGUF language models"),
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CPU_VARIABLES = ("ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE", "OMP_WAIT_POLICY")
# the extensions torch's, numba's and CTranslate2's kernels dispatch on
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


@dataclass
class Report:
    """Sections of (key, value) rows, in the order they are shown."""

    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, section: str, key: str, value: object) -> None:
        self.sections.setdefault(section, []).append((key, str(value)))

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {s: dict(rows) for s, rows in self.sections.items()}


def version_of(dist: str) -> str | None:
    """The installed version of distribution `dist`, or None, read without importing it."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def blas_of(config: str) -> str:
    """The BLAS and LAPACK torch was built with, from torch.__config__.show()."""
    found = {}
    for item in config.replace(",", "\n").replace(":", "\n").splitlines():
        key, _, value = item.strip().partition("=")
        if key in ("BLAS_INFO", "LAPACK_INFO"):
            found[key] = value.strip()
    return ", ".join(f"{k.split('_')[0].lower()} {v}" for k, v in found.items()) or "unknown"


def collect() -> Report:
    """Everything `frugal doctor` shows. Imports torch (its capabilities are only known
    there) but loads no model."""
    import torch

    import frugal

    r = Report()
    r.add("frugal", "frugal", frugal.__version__)
    r.add("frugal", "python", f"{platform.python_version()} ({platform.python_implementation()})")
    r.add("frugal", "platform", platform.platform())
    for dist in KEY_PACKAGES:
        r.add("packages", dist, version_of(dist) or "not installed")

    flags = cpu_flags()
    r.add("cpu", "model", cpu_name())
    r.add("cpu", "cores (os / usable)", f"{os.cpu_count()} / {len(os.sched_getaffinity(0))}")
    r.add("cpu", "vector extensions", " ".join(f for f in SIMD_FLAGS if f in flags) or "none found")
    r.add("cpu", "torch kernels (ATen capability)", torch.backends.cpu.get_cpu_capability())
    r.add("cpu", "BLAS", blas_of(torch.__config__.show()))
    r.add("cpu", "oneDNN (mkldnn)", "yes" if torch.backends.mkldnn.is_available() else "no")
    for var in CPU_VARIABLES:
        r.add("cpu", var, os.environ.get(var, "unset"))

    r.add("threads", "torch intra-op", torch.get_num_threads())
    r.add("threads", "torch inter-op", torch.get_num_interop_threads())
    r.add("threads", "OpenMP", "yes" if torch.backends.openmp.is_available() else "no")
    for var in THREAD_VARIABLES:
        r.add("threads", var, os.environ.get(var, "unset"))

    engines = torch.backends.quantized.supported_engines
    r.add("kernels", "int8 GEMM (torch._int_mm)", int8_gemm_status())
    r.add("kernels", "int8 products run on", int8_backend_status())
    r.add("kernels", "int8 products of a decoding step's rows", few_rows_status())
    r.add("kernels", "vocabulary projection runs as", wide_gemm_status())
    r.add("kernels", "quantized engines", ", ".join(e for e in engines if e != "none"))
    r.add("kernels", "fused format kernels (numba)", numba_status())
    r.add("kernels", "CUDA", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no")

    from frugal.models import CHECKPOINTS
    from frugal.models.packaged_lm import PACKAGED_LMS

    for c in CHECKPOINTS.values():
        r.add("models", c.name, c.status())
    for m in PACKAGED_LMS.values():
        r.add("models", m.name, m.status())
    for name, dists, what in EXTRAS:
        got = [f"{d} {version_of(d)}" for d in dists if version_of(d)]
        state = ", ".join(got) if len(got) == len(dists) else "not installed"
        r.add("extras", f"[{name}] {what}", state)
    return r


def int8_gemm_status() -> str:
    """Whether torch's int8 × int8 → int32 matmul runs here and is exact on a small case."""
    import torch

    try:
        a = torch.tensor([[127, -128] * 16] * 17, dtype=torch.int8)
        b = torch.tensor([[1, -1] * 4] * 32, dtype=torch.int8)
        got = torch._int_mm(a, b)
        want = a.int() @ b.int()
    except (RuntimeError, AttributeError) as exc:
        return f"no ({type(exc).__name__})"
    return "yes, exact" if torch.equal(got, want) else "WRONG RESULTS"


def _chosen_by(env: str) -> str:
    """ "VAR=value" when an environment variable forces a kernel choice, else "auto"."""
    return f"{env}={os.environ[env]}" if os.environ.get(env) else "auto"


def int8_backend_status() -> str:
    """Which backend int8 Linears use here and the timing that chose it (a slow int8 GEMM,
    e.g. on AVX2 CPUs without VNNI, is replaced by exact fp32 GEMMs)."""
    from frugal.nn.native import INT8_GEMM_ENV, int8_gemm_backend, int8_gemm_timings

    native, fp32 = int8_gemm_timings()
    how = _chosen_by(INT8_GEMM_ENV)
    what = {"native": "torch._int_mm", "emulated": "exact fp32 GEMMs"}[int8_gemm_backend()]
    return f"{what} ({how}; 64x384x1536: int8 {native:.2f} ms, fp32 {fp32:.2f} ms)"


def few_rows_status() -> str:
    """Which path multiplies a decoding step's few rows by int8 weights here (the int8
    screen of the vocabulary, int8 decoder Linears) and the timing that chose it."""
    from frugal.nn.native import FEW_ROWS, FEW_ROWS_ENV, few_rows_backend, few_rows_timings

    kernel, gemm = few_rows_timings()
    how = _chosen_by(FEW_ROWS_ENV)
    what = {"kernel": f"numba int8 kernel up to {FEW_ROWS} rows", "gemm": "the int8 GEMM path"}
    return (
        f"{what[few_rows_backend()]} ({how}; 2x384x16384: kernel {kernel:.2f} ms, "
        f"GEMM path {gemm:.2f} ms)"
    )


def wide_gemm_status() -> str:
    """Which of two equivalent BLAS calls the decoder's vocabulary projection uses here, and
    the timing that chose it (tiny.en's 51,864 × 384, two rows)."""
    import torch

    from frugal.nn.wide_linear import WIDE_GEMM_ENV, wide_gemm_form, wide_gemm_timings

    w = torch.randn(51864, 384, generator=torch.Generator().manual_seed(0))
    linear, transposed = wide_gemm_timings(w)
    how = _chosen_by(WIDE_GEMM_ENV)
    what = {"linear": "F.linear(h, w)", "transposed": "(w @ hᵀ)ᵀ"}[wide_gemm_form(w)]
    return f"{what} ({how}; 2 x 51864 x 384: F.linear {linear:.2f} ms, w @ hᵀ {transposed:.2f} ms)"


def numba_status() -> str:
    """numba's version and whether a fused kernel compiles here and gives the torch
    reference's bits."""
    import warnings

    import torch

    from frugal.formats import fastpath, get_format, kernels

    if not kernels.compiled():
        return "no (numba not importable: torch reference path)"
    x = torch.linspace(-3, 3, 257)
    fmt = get_format("mxfp4")
    was = fastpath.kernels_enabled()  # numba imports (checked above): the switch itself
    try:
        fastpath.set_kernels(False)
        ref = fmt.quantize(x)
        fastpath.set_kernels(True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast = fmt.quantize(x)
        ran = fastpath.kernels_enabled()  # a failing kernel switches them off with a warning
    finally:
        fastpath.set_kernels(was)
    if not ran:
        return f"no ({caught[0].message if caught else 'kernels failed'})"
    same = torch.equal(fast, ref)
    return f"numba {version_of('numba')}, " + ("bit-identical" if same else "DIFFERS from torch")
