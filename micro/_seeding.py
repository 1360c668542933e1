"""Per-key random streams in one compiled pass, bit-identical to NumPy's (internal).

``child_raw(base, keys)`` returns, for each key ``k``, the first 64-bit words of
``np.random.default_rng(np.random.SeedSequence(base, spawn_key=(k,)))`` -- what
:func:`micro._rsa._seed_state` draws to seed the RSA kernel -- without building a
``SeedSequence`` and a ``PCG64`` object per key (about 20 us each in Python: 0.05 s for the
2000 quadrature points of one rank in an FE² run).

It follows NumPy's ``SeedSequence`` (pool of four 32-bit words, ``hashmix``/``mix``,
``generate_state``) and ``PCG64`` (128-bit LCG seeded by ``pcg64_set_seed``, XSL-RR output,
step before output); 128-bit products are formed from 32-bit halves.
``tests/micro/test_seeding.py`` checks it against NumPy itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["child_raw"]

_M32 = 0xFFFFFFFF
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4
_PCG_MULT_HI = np.uint64(2549297995355413924)
_PCG_MULT_LO = np.uint64(4865540595714422341)


@njit(cache=True, inline="always")
def _hashmix(value, h):
    # h: the running hash constant (returned updated); all values are uint32 held in int64
    value = (value ^ h) & _M32
    h = (h * _MULT_A) & _M32
    value = (value * h) & _M32
    value ^= value >> 16
    return value, h


@njit(cache=True, inline="always")
def _mix(x, y):
    r = (_MIX_L * x - _MIX_R * y) & _M32
    return r ^ (r >> 16)


@njit(cache=True, inline="always")
def _mul64(a, b):
    # full 64 x 64 -> 128-bit product as (hi, lo)
    m = np.uint64(_M32)
    s = np.uint64(32)
    a0, a1, b0, b1 = a & m, a >> s, b & m, b >> s
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> s) + (p01 & m) + (p10 & m)
    return p11 + (p01 >> s) + (p10 >> s) + (mid >> s), (mid << s) | (p00 & m)


@njit(cache=True, inline="always")
def _lcg_step(hi, lo, inc_hi, inc_lo):
    # state * MULT + inc (mod 2^128)
    p_hi, p_lo = _mul64(lo, _PCG_MULT_LO)
    p_hi += lo * _PCG_MULT_HI + hi * _PCG_MULT_LO
    n_lo = p_lo + inc_lo
    carry = np.uint64(1) if n_lo < p_lo else np.uint64(0)
    return p_hi + inc_hi + carry, n_lo


@njit(cache=True)
def _child_raw(entropy, length, n_out):
    n = entropy.shape[0]
    out = np.empty((n, n_out), dtype=np.uint64)
    pool = np.empty(_POOL, dtype=np.int64)
    words = np.empty(8, dtype=np.int64)
    seed = np.empty(4, dtype=np.uint64)
    one = np.uint64(1)
    for k in range(n):
        ent = entropy[k]
        m = length[k]
        h = _INIT_A  # SeedSequence.mix_entropy
        for i in range(_POOL):
            pool[i], h = _hashmix(ent[i] if i < m else 0, h)
        for i_src in range(_POOL):
            for i_dst in range(_POOL):
                if i_src != i_dst:
                    v, h = _hashmix(pool[i_src], h)
                    pool[i_dst] = _mix(pool[i_dst], v)
        for i_src in range(_POOL, m):
            for i_dst in range(_POOL):
                v, h = _hashmix(ent[i_src], h)
                pool[i_dst] = _mix(pool[i_dst], v)
        hb = _INIT_B  # SeedSequence.generate_state(4, uint64): 8 words of 32 bits
        for i in range(8):
            v = (pool[i % _POOL] ^ hb) & _M32
            hb = (hb * _MULT_B) & _M32
            v = (v * hb) & _M32
            words[i] = v ^ (v >> 16)
        for i in range(4):
            seed[i] = np.uint64(words[2 * i]) | (np.uint64(words[2 * i + 1]) << np.uint64(32))
        # PCG64: pcg64_set_seed(state = seed[0:2], inc = seed[2:4]) -> srandom_r
        inc_hi = (seed[2] << one) | (seed[3] >> np.uint64(63))
        inc_lo = (seed[3] << one) | one
        hi, lo = _lcg_step(np.uint64(0), np.uint64(0), inc_hi, inc_lo)
        lo2 = lo + seed[1]
        hi = hi + seed[0] + (one if lo2 < lo else np.uint64(0))
        hi, lo = _lcg_step(hi, lo2, inc_hi, inc_lo)
        for j in range(n_out):  # random_raw: step, then XSL-RR of the new state
            hi, lo = _lcg_step(hi, lo, inc_hi, inc_lo)
            x = hi ^ lo
            rot = hi >> np.uint64(58)
            out[k, j] = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
    return out


def _uint32_words(value: int) -> list[int]:
    """NumPy's ``_int_to_uint32_array``: little-endian 32-bit words, ``[0]`` for 0."""
    words = [value & _M32]
    value >>= 32
    while value:
        words.append(value & _M32)
        value >>= 32
    return words


def child_raw(base_seed: int, keys: np.ndarray, n_words: int = 4) -> np.ndarray:
    """First raw words of the generator of each spawn key.

    Parameters
    ----------
    base_seed : int
        Entropy of the ``SeedSequence`` (>= 0).
    keys : array_like of int, shape (N,)
        One spawn key per stream (0 <= k < 2**64).
    n_words : int
        Words per stream.

    Returns
    -------
    ndarray, shape (N, n_words), uint64
        Row ``i`` equals ``np.random.default_rng(np.random.SeedSequence(base_seed,
        spawn_key=(keys[i],))).bit_generator.random_raw(n_words)``.
    """
    keys = np.asarray(keys, dtype=np.uint64).ravel()
    base = _uint32_words(int(base_seed))
    base += [0] * (_POOL - len(base))  # a spawn key pads the run entropy to the pool size
    nb = len(base)
    entropy = np.zeros((keys.size, nb + 2), dtype=np.int64)
    entropy[:, :nb] = base
    entropy[:, nb] = (keys & np.uint64(_M32)).astype(np.int64)
    high = (keys >> np.uint64(32)).astype(np.int64)
    entropy[:, nb + 1] = high
    length = np.where(high > 0, nb + 2, nb + 1).astype(np.int64)
    return _child_raw(entropy, length, int(n_words))
