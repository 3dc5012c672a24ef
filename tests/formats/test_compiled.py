"""torch.compile'd kernels give bit-identical results to the eager ones."""

import pytest
import torch

from frugal.formats import get_format, set_compile

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["mxfp4", "int4_g128"])
def test_compiled_equals_eager(name):
    torch.manual_seed(0)
    x = torch.randn(64, 256) * torch.logspace(-3, 3, 256)
    f = get_format(name)
    eager = f.quantize(x)
    set_compile(True)
    try:
        compiled = f.quantize(x)
    finally:
        set_compile(False)
    assert "_compiled_qdq" in f.__dict__
    assert torch.equal(compiled, eager)
