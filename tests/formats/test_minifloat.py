"""Minifloats bit-exact against ml_dtypes (after clamping to the format's max, since frugal
saturates), over every representable value, every tie and random inputs."""

import ml_dtypes
import numpy as np
import pytest
import torch

from frugal.formats import FLOAT_SPECS, get_format

ML = {
    "fp8_e4m3": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp6_e3m2": ml_dtypes.float6_e3m2fn,
    "fp6_e2m3": ml_dtypes.float6_e2m3fn,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
    "fp16": np.float16,
    "bf16": ml_dtypes.bfloat16,
}


def representable(kind: str) -> np.ndarray:
    """Every finite value of the format, as float32, sorted and unique."""
    dt = np.dtype(ML[kind])
    bits = np.arange(2 ** (8 * dt.itemsize), dtype=np.uint16 if dt.itemsize == 2 else np.uint8)
    vals = bits.view(dt).astype(np.float32)
    if kind in ("fp6_e3m2", "fp6_e2m3", "fp4_e2m1"):  # sub-byte types: only the low codes exist
        nbits = FLOAT_SPECS[kind].bits
        vals = np.arange(2**nbits, dtype=np.uint8).view(dt).astype(np.float32)
    return np.unique(vals[np.isfinite(vals)])


def reference(kind: str, x: np.ndarray) -> np.ndarray:
    m = FLOAT_SPECS[kind].max
    return np.clip(x, -m, m).astype(ML[kind]).astype(np.float32)


def ours(kind: str, x: np.ndarray) -> np.ndarray:
    return get_format(kind).quantize(torch.from_numpy(x)).numpy()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("kind", list(ML))
def test_max_matches_ml_dtypes(kind):
    assert FLOAT_SPECS[kind].max == float(representable(kind).max())


@pytest.mark.parametrize("kind", list(ML))
def test_every_representable_value_is_kept(kind):
    vals = representable(kind)
    assert same_bits(ours(kind, vals), vals)


@pytest.mark.parametrize("kind", list(ML))
def test_every_tie_rounds_to_even_like_ml_dtypes(kind):
    vals = representable(kind).astype(np.float64)
    mids = ((vals[1:] + vals[:-1]) / 2).astype(np.float32)
    assert np.array_equal(mids.astype(np.float64), (vals[1:] + vals[:-1]) / 2)  # exact in fp32
    nudged = np.concatenate([mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    assert same_bits(ours(kind, nudged), reference(kind, nudged))


@pytest.mark.parametrize("kind", list(ML))
def test_random_inputs_with_subnormals_and_overflow(kind):
    spec = FLOAT_SPECS[kind]
    rng = np.random.default_rng(0)
    exps = rng.integers(spec.emin - spec.mbits - 4, spec.emax + 3, size=200_000)
    with np.errstate(over="ignore"):  # bf16's top exponents overflow fp32 to inf: kept on purpose
        x = (rng.standard_normal(200_000) * 2.0**exps).astype(np.float32)
    x[:10] = [0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, spec.max, -spec.max, 1.0, -1.0]
    assert same_bits(ours(kind, x), reference(kind, x))


@pytest.mark.parametrize("kind", list(ML))
def test_inf_saturates_and_nan_propagates(kind):
    m = FLOAT_SPECS[kind].max
    out = ours(kind, np.array([np.inf, -np.inf, np.nan], np.float32))
    assert out[0] == m and out[1] == -m and np.isnan(out[2])


def test_stochastic_rounding_is_unbiased_and_on_grid():
    fmt = get_format("fp4_e2m1_sr")
    x = torch.full((200_000,), 2.4)  # between 2 and 3 in fp4
    q = fmt.quantize(x)
    assert set(q.unique().tolist()) == {2.0, 3.0}
    assert abs(q.mean().item() - 2.4) < 0.01
    assert fmt.bits_per_element == 4
