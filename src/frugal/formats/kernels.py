"""Fused CPU kernels for quantize-dequantize: one pass over memory per block format (scale and
rounding together), compiled by numba (LLVM, vectorized; no C compiler needed) and cached on
disk, so a second process starts in well under a second.

Each kernel mirrors, operation for operation and in float32, the torch reference in its
format's `qdq` — so results are bit-identical (tests compare them over the whole catalogue).
The loops run over a flat contiguous float32 array seen as rows of `row` elements, cut into
blocks of `block` elements (a partial last block per row); `g0, g1` select the blocks one
thread handles.

Why numba and not torch.compile or a C++ extension: it installs as a wheel on every platform
torch's CPU wheels cover, needs no compiler at run time (torch.compile's CPU backend does),
compiles each kernel once in ~1 s and then loads it from its cache, and gives exact control
over float32 operation order, which bit-identity needs. When numba is missing or a kernel
fails to compile, formats fall back to the torch reference (`available()` is False).
"""

from __future__ import annotations

import numpy as np

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic
except Exception:  # numba absent or broken: the torch reference path is used
    njit = None


if njit is not None:

    @intrinsic
    def f2i(typingctx, x):
        """The bits of a float32 as int32 (a register bitcast)."""
        if x != types.float32:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.int32(types.float32), codegen

    @intrinsic
    def i2f(typingctx, x):
        """The float32 whose bits are int32 `x`."""
        if x != types.int32:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    jit = njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
    inline = njit(nogil=True, cache=True, error_model="numpy", inline="always")

    @inline
    def exp2i(k):
        """2^k as float32 for integer k in [-149, 127] (subnormal below -126)."""
        if k >= -126:
            return i2f(np.int32((k + 127) << 23))
        return i2f(np.int32(1 << (k + 149)))

    @inline
    def floor_log2(a):
        """floor(log2(a)) of a non-negative float32 from its exponent bits (-127 for zero
        and subnormals), as the reference's `minifloat.floor_log2`."""
        return ((f2i(a) >> 23) & 0xFF) - 127

    @inline
    def clamp(v, lo, hi):
        """torch.clamp: NaN stays NaN."""
        if v < lo:
            return lo
        if v > hi:
            return hi
        return v

    @inline
    def round_float(y, emin, emax, mbits, vmax):
        """`minifloat.round_to_float` for one float32 (round to nearest even)."""
        e = min(max(floor_log2(abs(y)), emin), emax)
        step = exp2i(e - mbits)
        return clamp(np.rint(y / step) * step, -vmax, vmax)

    @inline
    def round_small_float(y, emin, emax, mbits, vmax):
        """`round_float` for formats whose grid steps have representable inverses
        (|exponent - mbits| <= 126, every MX element): multiplies by 2^(mbits - e) instead of
        dividing by 2^(e - mbits), the same value (both exact or both correctly rounded)."""
        e = min(max(floor_log2(abs(y)), emin), emax)
        up = i2f(np.int32((mbits - e + 127) << 23))  # normal powers of two: no subnormal case
        down = i2f(np.int32((e - mbits + 127) << 23))
        return clamp(np.rint(y * up) * down, -vmax, vmax)

    @inline
    def fp16_scale(s):
        """`integer._fp16_scale`: clamp to fp16's normal range, round to fp16 (RNE)."""
        if s != s:
            return s
        s = clamp(s, np.float32(6.103515625e-05), np.float32(65504.0))
        b = f2i(s)
        b = (b + np.int32(0xFFF) + ((b >> 13) & 1)) & np.int32(~0x1FFF)
        return i2f(np.int32(b))

    @inline
    def block_absmax_bits(xi, a, b):
        """Largest |x| bit pattern over xi[a:b] (NaN patterns compare above inf)."""
        m = np.int32(0)
        for j in range(a, b):
            m = max(m, xi[j] & np.int32(0x7FFFFFFF))
        return m

    @inline
    def block_absmax(xi, a, b):
        """max |x| over xi[a:b] (float32 bits as int32), NaN when any element is NaN (as
        torch's amax): for non-negative floats, bit patterns order as values do."""
        m = block_absmax_bits(xi, a, b)
        return np.float32(np.nan) if m > 0x7F800000 else i2f(np.int32(m))

    @inline
    def order_key(v):
        """int32 key of float32 bits `v` that orders as the values do (-0 just below +0)."""
        return v ^ ((v >> 31) & np.int32(0x7FFFFFFF))

    @inline
    def block_minmax(xi, a, b):
        """(min, max) of xi[a:b] (float32 bits as int32); both NaN when any element is."""
        lo = np.int32(0x7FFFFFFF)
        hi = np.int32(-0x80000000)
        m = np.int32(0)
        for j in range(a, b):
            v = xi[j]
            k = order_key(v)
            lo = min(lo, k)
            hi = max(hi, k)
            m = max(m, v & np.int32(0x7FFFFFFF))
        if m > 0x7F800000:
            return np.float32(np.nan), np.float32(np.nan)
        return i2f(np.int32(order_key(lo))), i2f(np.int32(order_key(hi)))

    @inline
    def first_block(g0, row, block):
        """(row, block within the row, blocks per row) of block number g0 of a flat array
        seen as rows of `row` elements cut into `block`s (a partial last block per row)."""
        nb = (row + block - 1) // block
        r = g0 // nb
        return r, g0 - r * nb, nb

    @inline
    def next_block(r, c, row, block, nb):
        """Flat [start, end) of block c of row r, and the (row, block) that follows."""
        a = r * row + c * block
        b = min(a + block, (r + 1) * row)
        c += 1
        if c == nb:
            r, c = r + 1, 0
        return a, b, r, c

    @inline
    def shared_exponent(xi, a, b, elem_emax):
        """MX's E8M0 exponent of block xi[a:b]: floor(log2 max|x|) - emax of the element,
        clamped to [-127, 127], with NaN counted as 0 and inf as the largest float."""
        m = block_absmax_bits(xi, a, b)
        if m > 0x7F800000:
            m = np.int32(0)
        elif m == 0x7F800000:
            m = np.int32(0x7F7FFFFF)
        return min(max(((m >> 23) & 0xFF) - 127 - elem_emax, -127), 127)

    @jit
    def mx_int(x, out, scales, g0, g1, row, block, elem_emax, step, emax_el):
        """MX/BFP with integer elements (`mx.MXFormat` with int elements)."""
        xi = x.view(np.int32)
        inv = np.float32(1.0) / step
        r, c, nb = first_block(g0, row, block)
        for g in range(g0, g1):
            a, b, r, c = next_block(r, c, row, block, nb)
            e = shared_exponent(xi, a, b, elem_emax)
            scale = exp2i(e)
            inv_scale = exp2i(-e)
            scales[g] = scale
            for j in range(a, b):
                y = x[j] * inv_scale
                y = np.rint(y * step) * inv
                out[j] = clamp(y, -emax_el, emax_el) * scale

    @jit
    def mx_float(x, out, scales, g0, g1, row, block, elem_emax, emin, emax, mbits, vmax):
        """MX with minifloat elements."""
        xi = x.view(np.int32)
        r, c, nb = first_block(g0, row, block)
        for g in range(g0, g1):
            a, b, r, c = next_block(r, c, row, block, nb)
            e = shared_exponent(xi, a, b, elem_emax)
            scale = exp2i(e)
            inv = exp2i(-e)  # x * 2^-e == x / 2^e for every x: both exact or both rounded
            scales[g] = scale
            for j in range(a, b):
                out[j] = round_small_float(x[j] * inv, emin, emax, mbits, vmax) * scale

    @jit
    def minifloat(x, out, i0, i1, emin, emax, mbits, vmax):
        """Element-wise minifloat rounding, saturating."""
        for j in range(i0, i1):
            out[j] = round_float(x[j], emin, emax, mbits, vmax)

    @jit
    def fixed(x, out, i0, i1, step, qlo, qhi):
        """clamp(round(x / step), qlo, qhi) * step (fixed point; Flexpoint with an exponent)."""
        for j in range(i0, i1):
            out[j] = clamp(np.rint(x[j] / step), qlo, qhi) * step

    @jit
    def int_sym(x, out, scales, g0, g1, row, block, qmax):
        """Symmetric intN per group: scale = fp16(absmax / qmax)."""
        xi = x.view(np.int32)
        qlo = np.float32(-qmax - 1)
        qhi = np.float32(qmax)
        r, c, nb = first_block(g0, row, block)
        for g in range(g0, g1):
            a, b, r, c = next_block(r, c, row, block, nb)
            scale = fp16_scale(block_absmax(xi, a, b) / np.float32(qmax))
            scales[g] = scale
            for j in range(a, b):
                out[j] = clamp(np.rint(x[j] / scale), qlo, qhi) * scale

    @jit
    def int_asym(x, out, scales, g0, g1, row, block, qmax):
        """Asymmetric intN per group: scale = fp16((max - min) / qmax), integer zero point."""
        xi = x.view(np.int32)
        fq = np.float32(qmax)
        zero_f = np.float32(0.0)
        r, c, nb = first_block(g0, row, block)
        for g in range(g0, g1):
            a, b, r, c = next_block(r, c, row, block, nb)
            lo, hi = block_minmax(xi, a, b)
            lo = min(lo, zero_f) if lo == lo else lo
            hi = max(hi, zero_f) if hi == hi else hi
            scale = fp16_scale((hi - lo) / fq)
            scales[g] = scale
            zero = np.rint(-lo / scale)
            for j in range(a, b):
                out[j] = (clamp(np.rint(x[j] / scale) + zero, zero_f, fq) - zero) * scale

    @jit
    def nf4(x, out, scales, g0, g1, row, block, lv, md):
        """NF4: fp16 absmax scale per block, nearest of 16 levels `lv` (ties to the lower;
        `md` the 15 midpoints): a chain of selects, which vectorizes (a gather does not)."""
        xi = x.view(np.int32)
        # levels and midpoints in registers: loads in the loop would stop vectorization
        l0, l1, l2, l3, l4, l5, l6, l7 = lv[0], lv[1], lv[2], lv[3], lv[4], lv[5], lv[6], lv[7]
        l8, l9, l10, l11, l12, l13 = lv[8], lv[9], lv[10], lv[11], lv[12], lv[13]
        l14, l15 = lv[14], lv[15]
        m0, m1, m2, m3, m4, m5, m6, m7 = md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7]
        m8, m9, m10, m11, m12, m13, m14 = md[8], md[9], md[10], md[11], md[12], md[13], md[14]
        r, c, nb = first_block(g0, row, block)
        for g in range(g0, g1):
            a, b, r, c = next_block(r, c, row, block, nb)
            scale = fp16_scale(block_absmax(xi, a, b))
            scales[g] = scale
            for j in range(a, b):
                v = x[j] / scale
                q = l0
                q = l1 if v > m0 else q
                q = l2 if v > m1 else q
                q = l3 if v > m2 else q
                q = l4 if v > m3 else q
                q = l5 if v > m4 else q
                q = l6 if v > m5 else q
                q = l7 if v > m6 else q
                q = l8 if v > m7 else q
                q = l9 if v > m8 else q
                q = l10 if v > m9 else q
                q = l11 if v > m10 else q
                q = l12 if v > m11 else q
                q = l13 if v > m12 else q
                q = l14 if v > m13 else q
                q = l15 if v > m14 else q
                out[j] = q * scale

    @jit
    def fixed_zero(x, out, i0, i1, step, zero, qlo, qhi):
        """(clamp(round(x / step) + zero, qlo, qhi) - zero) * step (asymmetric, one grid)."""
        for j in range(i0, i1):
            out[j] = (clamp(np.rint(x[j] / step) + zero, qlo, qhi) - zero) * step

    @jit
    def fixed_absmax(x, out, i0, i1, step, qlo, qhi, res, slot):
        """`fixed`, and res[slot] = the largest |x| bit pattern of x[i0:i1] (one pass)."""
        xi = x.view(np.int32)
        m = np.int32(0)
        for j in range(i0, i1):
            out[j] = clamp(np.rint(x[j] / step), qlo, qhi) * step
            m = max(m, xi[j] & np.int32(0x7FFFFFFF))
        res[slot] = m

    @jit
    def minmax(x, i0, i1, res, slot):
        """res[slot] = (min, max) of x[i0:i1], both NaN when any element is NaN."""
        lo, hi = block_minmax(x.view(np.int32), i0, i1)
        res[slot, 0] = lo
        res[slot, 1] = hi

    @jit
    def clip_grad(x, grad, out, limits, g0, g1, row, block):
        """Straight-through gradient: grad where |x| <= its block's limit, else grad * 0."""
        r, c, nb = first_block(g0, row, block)
        for g in range(g0, g1):
            a, b, r, c = next_block(r, c, row, block, nb)
            lim = limits[g]
            for j in range(a, b):
                out[j] = grad[j] * (np.float32(1.0) if abs(x[j]) <= lim else np.float32(0.0))

    @jit
    def clip_grad_all(x, grad, out, i0, i1, lim):
        """`clip_grad` with one limit for every element."""
        for j in range(i0, i1):
            out[j] = grad[j] * (np.float32(1.0) if abs(x[j]) <= lim else np.float32(0.0))


def compiled() -> bool:
    """True when numba is importable (kernels may still fail to compile on first use)."""
    return njit is not None


__all__ = ["compiled"]
