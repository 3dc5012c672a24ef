"""torch.compile'd reference kernels (the path for devices the fused CPU kernels do not
cover) give bit-identical results to the eager ones."""

import os

import pytest
import torch

from frugal.formats import fastpath, get_format, set_compile

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["mxfp4", "int4_g128"])
def test_compiled_equals_eager(name):
    torch.manual_seed(0)
    x = torch.randn(64, 256) * torch.logspace(-3, 3, 256)
    f = get_format(name)
    fastpath.set_kernels(False)  # on the CPU the fused kernels would otherwise take over
    try:
        eager = f.quantize(x)
        set_compile(True)
        compiled = f.quantize(x)
    finally:
        set_compile(False)
        fastpath.set_kernels(True)
    assert "_compiled_qdq" in f.__dict__
    assert torch.equal(compiled, eager)


def test_inductor_cache_is_kept_apart_per_cpu_capability(monkeypatch, tmp_path):
    """Kernels cached by an AVX-512 run gave garbage when reused under
    ATEN_CPU_CAPABILITY=avx2; frugal compiles into a cache folder per capability, unless the
    user chose a folder."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from frugal.formats.base import _inductor_cache_per_isa

    isa = torch.backends.cpu.get_cpu_capability().lower()
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    _inductor_cache_per_isa()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == os.path.join(
        default_cache_dir(), f"frugal-{isa}"
    )
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    _inductor_cache_per_isa()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path)
