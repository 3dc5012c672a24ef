"""The fused CPU kernels give bit-identical results (values and straight-through gradients)
to the torch reference path over the whole catalogue; their cache survives a new process;
without numba, or when a kernel fails, formats still work through the reference."""

import json
import multiprocessing
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from frugal.formats import CATALOGUE, fastpath, get_format, kernels

# beyond the catalogue: per-tensor / per-channel asymmetric, odd groups and blocks
EXTRA = ["int4_asym", "int8_pc_asym", "int4_g7", "int3_g5_asym", "mxint4_b5", "mxfp6_b3", "nf4_b7"]
ALL = [*CATALOGUE, *EXTRA]

# numba is in the locked environment: without it these tests fail rather than skip
assert kernels.compiled(), "numba is not importable"


def reference(fmt, x: torch.Tensor, grad: torch.Tensor | None = None):
    """Values (and the input's gradient for `grad`) through the torch reference path."""
    fastpath.set_kernels(False)
    try:
        return run(fmt, x, grad)
    finally:
        fastpath.set_kernels(True)


def run(fmt, x: torch.Tensor, grad: torch.Tensor | None = None):
    if grad is None:
        return fmt.quantize(x), None
    leaf = x.detach().clone().requires_grad_(True)
    q = fmt.quantize(leaf)
    q.backward(grad)
    return q.detach(), leaf.grad


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit, except that any NaN matches any NaN."""
    an, bn = a.isnan(), b.isnan()
    if not torch.equal(an, bn):
        return False
    return torch.equal(a[~an].view(torch.int32), b[~bn].view(torch.int32))


special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -3e-39, 3.4e38, 65504.0])
values = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.floats(-8, 8, width=32),
    special,
)
shapes = st.one_of(
    st.tuples(st.integers(1, 200)),
    st.tuples(st.integers(1, 9), st.integers(1, 70)),
    st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 40)),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ALL), shapes.flatmap(lambda s: arrays(np.float32, s, elements=values)))
def test_fused_equals_reference(name, x):
    f = get_format(name)
    t = torch.from_numpy(x)
    fast, _ = run(f, t)
    assert fastpath.kernels_enabled()
    assert same_bits(fast, reference(f, t)[0]), name


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(ALL),
    st.integers(2, 9),
    st.integers(1, 70),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**31 - 1),
)
def test_gradients_and_strided_inputs(name, rows, cols, spread, seed):
    # non-contiguous input (a transposed view), values spanning decades, some saturating
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(cols, rows, generator=g) * spread).t()
    x[0, 0] = 1e30
    grad = torch.randn(rows, cols, generator=g)
    f = get_format(name)
    q, gx = run(f, x, grad)
    q_ref, gx_ref = reference(f, x, grad)
    assert same_bits(q, q_ref) and same_bits(gx, gx_ref), name


@pytest.mark.parametrize("name", ALL)
def test_threaded_large_tensor(name):
    # above fastpath.GRAIN, so the work is split over threads
    torch.manual_seed(1)
    x = torch.randn(301, 733) * torch.logspace(-4, 4, 733)
    x[7, 11], x[100, 5], x[300, 732] = float("nan"), float("inf"), -0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fast = get_format(name).quantize(x)
    finally:
        torch.set_num_threads(threads)
    assert same_bits(fast, reference(get_format(name), x)[0])


def test_half_precision_inputs_keep_their_dtype():
    x = torch.randn(8, 64).to(torch.bfloat16)
    q = get_format("mxfp4").quantize(x)
    assert q.dtype == torch.bfloat16
    assert same_bits(q.float(), reference(get_format("mxfp4"), x)[0].float())


def test_a_failing_kernel_falls_back_with_one_warning(monkeypatch):
    def broken(*args):
        raise RuntimeError("no LLVM today")

    monkeypatch.setattr(kernels, "mx_int", broken)
    x = torch.randn(4, 64)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        q = get_format("mxint8").quantize(x)
    try:
        assert not fastpath.kernels_enabled()
        assert any("fused kernels failed" in str(w.message) for w in seen)
        assert torch.equal(q, reference(get_format("mxint8"), x)[0])
    finally:
        fastpath.set_kernels(True)


def _quantize_in_child(queue):
    # numpy input and a numpy sum: no torch OpenMP region in the child (GNU OpenMP itself
    # is not fork-safe once the parent used it); only frugal's kernel threads are exercised
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((512, 512), np.float32))
    queue.put(float(np.abs(get_format("mxfp4").quantize(x).numpy()).sum()))


def test_a_forked_child_can_use_the_thread_pool():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        get_format("mxfp4").quantize(torch.randn(512, 512))  # the parent's pool exists
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        p = ctx.Process(target=_quantize_in_child, args=(queue,), daemon=True)
        p.start()
        p.join(60)
        if p.exitcode is None:
            p.kill()
        assert p.exitcode == 0 and queue.get(timeout=5) > 0
    finally:
        torch.set_num_threads(threads)


CHILD = """
import json, sys, torch
{block}
from frugal.formats import get_format, kernels
x = torch.arange(-64, 64, dtype=torch.float32).reshape(2, 64) / 7
q = get_format("mxfp4").quantize(x)
hits = sum(kernels.mx_float.stats.cache_hits.values()) if kernels.compiled() else 0
misses = sum(kernels.mx_float.stats.cache_misses.values()) if kernels.compiled() else 0
print(json.dumps({{"q": q.tolist(), "compiled": kernels.compiled(), "hits": hits,
                  "misses": misses}}))
"""


def child(tmp_path, block: str = "") -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(block=block)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_compiled_kernels_are_cached_for_the_next_process(tmp_path):
    # NUMBA_CACHE_DIR points at an empty folder: the first process compiles, the second loads
    first, second = child(tmp_path), child(tmp_path)
    assert first["misses"] >= 1 and second["misses"] == 0 and second["hits"] >= 1
    assert first["q"] == second["q"]


def test_without_numba_formats_use_the_reference(tmp_path):
    blocked = "sys.modules['numba'] = None; sys.modules['llvmlite'] = None"
    out = child(tmp_path, blocked)
    assert out["compiled"] is False
    x = torch.arange(-64, 64, dtype=torch.float32).reshape(2, 64) / 7
    assert out["q"] == reference(get_format("mxfp4"), x)[0].tolist()
