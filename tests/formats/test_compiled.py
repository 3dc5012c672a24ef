"""torch.compile'd reference kernels (the path for devices the fused CPU kernels do not
cover) give bit-identical results to the eager ones."""

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
