"""Compiled (numba) kernels of :mod:`surrogate.stem` (internal).

Kept in one file because numba caches compiled code per source file (``cache=True``): a callee
edited in another module would leave stale callers in the cache. Each kernel takes contiguous
``uint8`` images (or their words) and returns float32 features; the wrappers in
:mod:`surrogate.stem` validate the input and build the look-up tables. The kernels release the
GIL (``nogil``), so that threads (``CNNProvider(streams=...)``) run them side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "block_bounds_2d",
    "block_bounds_2d_words",
    "block_bounds_3d",
    "block_means_2d",
    "block_means_3d",
    "line_counts_2d",
    "line_counts_3d",
    "pixel_counts_words",
]


@njit(cache=True, nogil=True)
def block_means_2d(images, s):
    n_img, n, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m), dtype=np.float32)
    acc = np.empty(n, dtype=np.int32)
    inv = np.float32(1.0 / (s * s))
    for k in range(n_img):
        for bi in range(m):
            acc[:] = 0
            for i in range(bi * s, (bi + 1) * s):
                for j in range(n):
                    acc[j] += images[k, i, j]
            for bj in range(m):
                t = 0
                for j in range(bj * s, (bj + 1) * s):
                    t += acc[j]
                out[k, bi, bj] = np.float32(t) * inv
    return out


@njit(cache=True, nogil=True)
def block_means_3d(images, s):
    n_img, n, _, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m, m), dtype=np.float32)
    acc = np.empty((n, n), dtype=np.int32)
    inv = np.float32(1.0 / (s * s * s))
    for k in range(n_img):
        for bi in range(m):
            acc[:, :] = 0
            for i in range(bi * s, (bi + 1) * s):
                for j in range(n):
                    for q in range(n):
                        acc[j, q] += images[k, i, j, q]
            for bj in range(m):
                for bq in range(m):
                    t = 0
                    for j in range(bj * s, (bj + 1) * s):
                        for q in range(bq * s, (bq + 1) * s):
                            t += acc[j, q]
                    out[k, bi, bj, bq] = np.float32(t) * inv
    return out


@njit(cache=True, inline="always")
def _store_2d(cell, ef, total, lo1, inv1, lo2, inv2):
    # exp(fraction), lower bound of mu_11, 1 / its upper bound, the same for mu_22: the caller
    # takes one logarithm of the whole (contiguous) output and scales it per channel
    cell[0] = ef[total]
    cell[1] = lo1
    cell[2] = inv1
    cell[3] = lo2
    cell[4] = inv2


@njit(cache=True, nogil=True)
def pixel_counts_words(words):
    # words: (N, W) uint64, 8 pixels (bytes of 0/1) each; a byte sum is one multiply
    n_img, n_words = words.shape
    mul = np.uint64(0x0101010101010101)
    top = np.uint64(56)
    out = np.empty(n_img, dtype=np.int64)
    for k in range(n_img):
        t = 0
        for w in range(n_words):
            t += np.int64((words[k, w] * mul) >> top)
        out[k] = t
    return out


@njit(cache=True, nogil=True)
def block_bounds_2d(images, s, harm, inv_arith, ef):
    # harm[c]: harmonic mean of mu along s pixels with c inclusion pixels, over s;
    # inv_arith[c]: 1 / arithmetic mean of mu over s pixels with c inclusion pixels, over s;
    # ef[t]: exp of the fraction of a block with t inclusion pixels.
    # One band of s rows at a time: column-segment counts by contiguous adds (vectorized),
    # row-segment counts by short sums; then per block 4 s table look-ups.
    n_img, n, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m, 5), dtype=np.float32)
    cseg = np.empty(n, dtype=np.int32)
    rseg = np.empty((s, m), dtype=np.int32)
    for k in range(n_img):
        for bi in range(m):
            for col in range(n):
                cseg[col] = 0
            for i in range(s):
                row = bi * s + i
                for col in range(n):
                    cseg[col] += images[k, row, col]
                for bj in range(m):
                    t = 0
                    for j in range(bj * s, bj * s + s):
                        t += images[k, row, j]
                    rseg[i, bj] = t
            for bj in range(m):
                lo1 = 0.0  # lines along x_1 are the columns of the block
                lo2 = 0.0
                inv1 = 0.0  # slices normal to x_1 are its rows
                inv2 = 0.0
                total = 0
                for q in range(s):
                    cc = cseg[bj * s + q]
                    rr = rseg[q, bj]
                    lo1 += harm[cc]
                    inv2 += inv_arith[cc]
                    lo2 += harm[rr]
                    inv1 += inv_arith[rr]
                    total += rr
                _store_2d(out[k, bi, bj], ef, total, lo1, inv1, lo2, inv2)
    return out


@njit(cache=True, nogil=True)
def _words_one(words, s, harm, inv_arith, ef, out):
    # block_bounds_2d_words of one image, one word per block row: words (n, m), out (m, m, 5)
    n, m = words.shape
    mul = np.uint64(0x0101010101010101)
    top = np.uint64(8 * s - 8)
    byte = np.uint64(0xFF)
    eight = np.uint64(8)
    for bi in range(m):
        for bj in range(m):
            acc = np.uint64(0)
            lo2 = 0.0
            inv1 = 0.0
            total = 0
            for i in range(s):
                w = np.uint64(words[bi * s + i, bj])
                acc += w
                rr = np.int64(((w * mul) >> top) & byte)
                lo2 += harm[rr]
                inv1 += inv_arith[rr]
                total += rr
            lo1 = 0.0
            inv2 = 0.0
            for q in range(s):
                cc = np.int64((acc >> (eight * np.uint64(q))) & byte)
                lo1 += harm[cc]
                inv2 += inv_arith[cc]
            _store_2d(out[bi, bj], ef, total, lo1, inv1, lo2, inv2)


@njit(cache=True, nogil=True)
def _words_wide_one(words, s, harm, inv_arith, ef, out):
    # block_bounds_2d_words of one image, s / 8 words per block row: words (n, m s / 8)
    # (kept apart from _words_one: this general loop runs s = 8 at about half the speed)
    n, n_words = words.shape
    wpb = s // 8
    m = n_words // wpb
    mul = np.uint64(0x0101010101010101)
    top = np.uint64(56)
    byte = np.uint64(0xFF)
    eight = np.uint64(8)
    acc = np.empty(wpb, dtype=np.uint64)
    for bi in range(m):
        for bj in range(m):
            acc[:] = 0
            lo2 = 0.0
            inv1 = 0.0
            total = 0
            for i in range(s):
                rr = 0
                for w in range(wpb):
                    x = words[bi * s + i, bj * wpb + w]
                    acc[w] += x
                    rr += np.int64((x * mul) >> top)
                lo2 += harm[rr]
                inv1 += inv_arith[rr]
                total += rr
            lo1 = 0.0
            inv2 = 0.0
            for w in range(wpb):
                a = acc[w]
                for q in range(8):
                    cc = np.int64((a >> (eight * np.uint64(q))) & byte)
                    lo1 += harm[cc]
                    inv2 += inv_arith[cc]
            _store_2d(out[bi, bj], ef, total, lo1, inv1, lo2, inv2)


@njit(cache=True, nogil=True)
def block_bounds_2d_words(words, s, harm, inv_arith, ef):
    # As block_bounds_2d, on the image rows as words: one row of one block is one word of s
    # bytes (uint32 for s = 4, uint64 for s = 8) or s / 8 uint64 words (s = 16, 24, ..., 248).
    # A word's byte sum (a multiply by 0x0101..01) is its pixel count; the sum of a block's
    # words over its s rows holds the s column counts in its bytes (each <= s <= 255, no carry).
    n_img, n, _ = words.shape
    m = n // s
    out = np.empty((n_img, m, m, 5), dtype=np.float32)
    for k in range(n_img):
        if s == words.itemsize:
            _words_one(words[k], s, harm, inv_arith, ef, out[k])
        else:
            _words_wide_one(words[k], s, harm, inv_arith, ef, out[k])
    return out


@njit(cache=True, nogil=True)
def block_bounds_3d(images, s, harm, inv_arith2, ef):
    # harm[c]: harmonic mean along s voxels, over s*s; inv_arith2[c]: 1 / arithmetic mean over
    # s*s voxels, over s; ef[t]: exp of the fraction. Stores, per axis, the lower bound and
    # 1 / the upper bound (the caller takes the logarithm).
    n_img, n, _, _ = images.shape
    m = n // s
    out = np.empty((n_img, m, m, m, 7), dtype=np.float32)
    for k in range(n_img):
        c0 = np.empty((s, s), dtype=np.int64)  # line counts along x_1, indexed (j, l)
        c1 = np.empty((s, s), dtype=np.int64)  # along x_2, indexed (i, l)
        c2 = np.empty((s, s), dtype=np.int64)  # along x_3, indexed (i, j)
        for bi in range(m):
            for bj in range(m):
                for bl in range(m):
                    c0[:, :] = 0
                    c1[:, :] = 0
                    total = 0
                    for i in range(s):
                        for j in range(s):
                            t = 0
                            for q in range(s):
                                v = images[k, bi * s + i, bj * s + j, bl * s + q]
                                t += v
                                c0[j, q] += v
                                c1[i, q] += v
                            c2[i, j] = t
                            total += t
                    out[k, bi, bj, bl, 0] = ef[total]
                    for axis in range(3):
                        lo = 0.0
                        for a in range(s):
                            for b in range(s):
                                if axis == 0:
                                    lo += harm[c0[a, b]]
                                elif axis == 1:
                                    lo += harm[c1[a, b]]
                                else:
                                    lo += harm[c2[a, b]]
                        inv = 0.0
                        for a in range(s):  # slice a normal to the axis
                            t = 0
                            for b in range(s):
                                if axis == 0:
                                    t += c2[a, b]  # slice i = a: sum over j of c2[a, j]
                                elif axis == 1:
                                    t += c2[b, a]  # slice j = a
                                else:
                                    t += c1[b, a]  # slice l = a
                            inv += inv_arith2[t]
                        out[k, bi, bj, bl, 1 + 2 * axis] = lo
                        out[k, bi, bj, bl, 2 + 2 * axis] = inv
    return out


@njit(cache=True, nogil=True)
def line_counts_2d(images):
    n_img, n, _ = images.shape
    rows = np.zeros((n_img, n), dtype=np.int32)  # rows[k, i] = sum_j x[i, j]
    cols = np.zeros((n_img, n), dtype=np.int32)  # cols[k, j] = sum_i x[i, j]
    for k in range(n_img):
        for i in range(n):
            t = 0
            for j in range(n):
                v = images[k, i, j]
                t += v
                cols[k, j] += v
            rows[k, i] = t
    return rows, cols


@njit(cache=True, nogil=True)
def line_counts_3d(images):
    n_img, n, _, _ = images.shape
    c0 = np.zeros((n_img, n, n), dtype=np.int32)  # c0[k, j, l] = sum_i x[i, j, l]
    c1 = np.zeros((n_img, n, n), dtype=np.int32)  # c1[k, i, l] = sum_j x[i, j, l]
    c2 = np.zeros((n_img, n, n), dtype=np.int32)  # c2[k, i, j] = sum_l x[i, j, l]
    for k in range(n_img):
        for i in range(n):
            for j in range(n):
                t = 0
                for q in range(n):
                    v = images[k, i, j, q]
                    t += v
                    c0[k, j, q] += v
                    c1[k, i, q] += v
                c2[k, i, j] = t
    return c0, c1, c2
