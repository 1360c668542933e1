"""Compiled (numba) kernels of the random sequential addition engine (internal).

Called through :mod:`micro._rsa`, which imports this module on first use (importing numba
costs ~0.2 s; compiled code is cached on disk by ``cache=True``).  The kernels stay in one
file because numba invalidates its on-disk cache per source file: a callee edited in another
module would leave stale callers in the cache.

Layout: every grid is handled as 3D, shape ``(n0, n1, n2)``, flattened C-order, the sides
independent (rectangular cells, square pixels); a 2D cell ``(n1, n2)`` is ``(1, n1, n2)`` whose
dummy axis 0 holds every centre at ``0.5``, so that its squared displacement is exactly 0 and
the squared distances are bit-identical to the 2D ones.

Randomness: xoshiro256** (Blackman & Vigna), state ``uint64[4]`` updated in place, seeded by
the caller from a :class:`numpy.random.Generator`; doubles use the top 53 bits.

Status codes returned by :func:`rsa_run`: ``OK``, ``ATTEMPTS`` (``max_attempts`` candidates
drawn), ``JAMMED`` (no free space left), ``STUCK`` (every further inclusion overshoots the
target window, after the last restart).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "ATTEMPTS",
    "JAMMED",
    "OK",
    "STUCK",
    "next_double",
    "rasterize_balls",
    "rsa_batch",
    "rsa_run",
]

OK, ATTEMPTS, JAMMED, STUCK = 0, 1, 2, 3
_SHRINK_TRIES = 4
_STUCK_AFTER = 500  # consecutive candidates that would overshoot the target window: restart
_RESTARTS = 20
_SWITCH_AFTER = 64  # consecutive overlapping candidates: build the blocked map
_LIST_BELOW = 1.0 / 16.0  # draw from a list of the free pixels below this free fraction
_ADDED, _REJECTED, _STOP = 0, 1, 2
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


# -- random numbers ------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def next_double(s):
    """Uniform double in [0, 1) from the xoshiro256** state ``s`` (uint64[4], updated)."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3
    return float(result >> np.uint64(11)) * _INV53


# -- periodic boxes ------------------------------------------------------------------------
@njit(cache=True)
def _axis_box(c, radius, n, idx, sq):
    """Periodic bounding interval of a ball along one axis; returns its width ``w``.

    Fills ``idx[:w]`` (wrapped pixel indices) and ``sq[:w]`` (squared displacement of the
    pixel centres from ``c``), as :func:`micro._rsa_numpy.ball_patch` does.
    """
    lo = math.ceil(c - radius - 0.5)
    hi = math.floor(c + radius - 0.5)
    if hi - lo + 1 >= n:
        for i in range(n):
            d = (i + 0.5 - c + 0.5 * n) % n - 0.5 * n
            idx[i] = i
            sq[i] = d * d
        return n
    for j in range(hi - lo + 1):
        off = lo + j
        d = off + 0.5 - c
        idx[j] = off + n if off < 0 else (off - n if off >= n else off)  # off in [-n, 2n)
        sq[j] = d * d
    return hi - lo + 1


@njit(cache=True)
def _paint(image, shape, c, radius, strict, idx, sq, buf):
    """Set the pixels whose centre is within ``radius`` of ``c`` (3,) (``<`` if ``strict``,
    else ``<=``), periodic minimum image, on the flat grid ``image`` of ``shape`` (3,).

    Returns how many were newly set; their flat indices go to ``buf`` unless it is empty.
    ``idx``, ``sq`` (3, >= max(shape)) are work space.  The squared distance is summed as
    ``(sq0 + sq1) + sq2``, the order of the numpy reference and of :func:`micro.rasterize`.
    """
    w0 = _axis_box(c[0], radius, shape[0], idx[0], sq[0])
    w1 = _axis_box(c[1], radius, shape[1], idx[1], sq[1])
    w2 = _axis_box(c[2], radius, shape[2], idx[2], sq[2])
    r2 = radius * radius
    s0 = shape[1] * shape[2]
    s1 = shape[2]
    record = buf.shape[0] > 0
    new = 0
    for a in range(w0):
        qa = sq[0, a]
        if qa > r2:
            continue
        ba = idx[0, a] * s0
        for b in range(w1):
            qab = qa + sq[1, b]
            if qab > r2:
                continue
            bb = ba + idx[1, b] * s1
            for j in range(w2):
                q = qab + sq[2, j]
                if q < r2 or (q == r2 and not strict):
                    p = bb + idx[2, j]
                    if not image[p]:
                        image[p] = True
                        if record:
                            buf[new] = p
                        new += 1
    return new


# -- bit map of blocked pixels (rows along axis 2, 64 pixels a word) ----------------------
@njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def _set_range(bits, row, a, b):
    """Set bits ``a..b`` (inclusive, ``0 <= a <= b``) of the row starting at word ``row``;
    returns how many were newly set."""
    wa = a >> 6
    wb = b >> 6
    if wa == wb:
        mask = (_ONES << np.uint64(a & 63)) & (_ONES >> np.uint64(63 - (b & 63)))
        old = bits[row + wa]
        bits[row + wa] = old | mask
        return _popcount(mask & ~old)
    new = 0
    for wd in range(wa, wb + 1):
        mask = _ONES
        if wd == wa:
            mask = _ONES << np.uint64(a & 63)
        elif wd == wb:
            mask = _ONES >> np.uint64(63 - (b & 63))
        old = bits[row + wd]
        bits[row + wd] = old | mask
        new += _popcount(mask & ~old)
    return new


@njit(cache=True, inline="always")
def _is_set(bits, wpr, n2, p):
    """Bit of flat pixel ``p`` (rows of ``n2`` pixels, ``wpr`` words a row)."""
    row = p // n2
    i = p - row * n2
    return (bits[row * wpr + (i >> 6)] >> np.uint64(i & 63)) & np.uint64(1)


@njit(cache=True)
def _block(bits, wpr, shape, c, reach, idx, sq):
    """Set the bits of the pixels whose centre is within ``reach`` of ``c`` (3,) (periodic
    minimum image); returns how many were newly set.

    Rows come from the square-root half-width; the margin the caller puts in ``reach``
    (1e-9 px) covers its rounding, so a set pixel is always within ``reach`` (plus 1e-9).
    """
    w0 = _axis_box(c[0], reach, shape[0], idx[0], sq[0])
    w1 = _axis_box(c[1], reach, shape[1], idx[1], sq[1])
    r2 = reach * reach
    n2 = shape[2]
    c2 = c[2] - 0.5
    new = 0
    for a in range(w0):
        qa = sq[0, a]
        if qa > r2:
            continue
        ra = idx[0, a] * shape[1]
        for b in range(w1):
            qab = qa + sq[1, b]
            if qab > r2:
                continue
            h = math.sqrt(r2 - qab)
            lo = math.ceil(c2 - h)
            hi = math.floor(c2 + h)
            if lo > hi:
                continue
            row = (ra + idx[1, b]) * wpr
            if hi - lo + 1 >= n2:
                new += _set_range(bits, row, 0, n2 - 1)
                continue
            if lo < 0:
                lo += n2
            elif lo >= n2:
                lo -= n2
            if hi < 0:
                hi += n2
            elif hi >= n2:
                hi -= n2
            if lo <= hi:
                new += _set_range(bits, row, lo, hi)
            else:
                new += _set_range(bits, row, lo, n2 - 1) + _set_range(bits, row, 0, hi)
    return new


@njit(cache=True)
def _free_pixels(bits, wpr, shape, out):
    """Flat indices of the pixels whose bit is clear into ``out``; returns how many."""
    n2 = shape[2]
    k = 0
    for row in range(shape[0] * shape[1]):
        for wd in range(wpr):
            x = ~bits[row * wpr + wd]
            rest = n2 - 64 * wd
            if rest < 64:
                x &= (np.uint64(1) << np.uint64(rest)) - np.uint64(1)
            base = row * n2 + 64 * wd
            while x:
                low = x & (~x + np.uint64(1))
                out[k] = base + _popcount(low - np.uint64(1))
                k += 1
                x ^= low
    return k


# -- one RSA run ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _min_image(d, n):
    """Minimum-image displacement of ``d`` in ``(-n, n)`` on a period ``n``."""
    if d > 0.5 * n:
        return d - n
    if d < -0.5 * n:
        return d + n
    return d


@njit(cache=True, inline="always")
def _wrap(i, n):
    """``i % n`` for ``i`` in ``[-1, n]`` (a neighbouring bin), without a division."""
    if i < 0:
        return i + n
    if i >= n:
        return i - n
    return i


@njit(cache=True)
def _is_clear(pos, r, centers, radii, m, head, nxt, nb, bin_side, shape):
    """Whether a ball (pos, r) is at least ``r + r_j`` from every inclusion (minimum image).

    With a cell list (``head`` of more than one bin: ``nb (3,)`` bins of side
    ``bin_side (3,) >= 2 rmax`` per axis) only the neighbouring bins are searched (all the
    bins of an axis with fewer than 3), else all ``m`` inclusions.
    """
    if head.shape[0] > 1:
        n0, n1, n2 = nb[0], nb[1], nb[2]
        p0, p1, p2 = pos[0], pos[1], pos[2]
        s0, s1, s2 = shape[0], shape[1], shape[2]
        b0 = int(p0 // bin_side[0]) % n0
        b1 = int(p1 // bin_side[1]) % n1
        b2 = int(p2 // bin_side[2]) % n2
        lo0, hi0 = (-1, 1) if n0 >= 3 else (0, n0 - 1)
        lo1, hi1 = (-1, 1) if n1 >= 3 else (0, n1 - 1)
        lo2, hi2 = (-1, 1) if n2 >= 3 else (0, n2 - 1)
        for o0 in range(lo0, hi0 + 1):
            f0 = _wrap(b0 + o0, n0) * n1
            for o1 in range(lo1, hi1 + 1):
                f1 = (f0 + _wrap(b1 + o1, n1)) * n2
                for o2 in range(lo2, hi2 + 1):
                    j = head[f1 + _wrap(b2 + o2, n2)]
                    while j >= 0:  # _apart, unrolled (same sum order)
                        d0 = _min_image(p0 - centers[j, 0], s0)
                        d1 = _min_image(p1 - centers[j, 1], s1)
                        d2 = _min_image(p2 - centers[j, 2], s2)
                        lim = r + radii[j]
                        if (d0 * d0 + d1 * d1) + d2 * d2 < lim * lim:
                            return False
                        j = nxt[j]
        return True
    for j in range(m):
        if not _apart(pos, r, centers[j], radii[j], shape):
            return False
    return True


@njit(cache=True, inline="always")
def _apart(pos, r, cj, rj, shape):
    dist2 = 0.0
    for k in range(3):
        d = _min_image(pos[k] - cj[k], shape[k])
        dist2 += d * d
    lim = r + rj
    return dist2 >= lim * lim


@njit(cache=True)
def _grow(centers, radii, nxt):
    cap = 2 * radii.shape[0]
    c2 = np.empty((cap, 3))
    r2 = np.empty(cap)
    n2 = np.empty(cap, dtype=np.int64)
    m = radii.shape[0]
    for j in range(m):  # loops: array assignment would compile a shape-error formatter
        c2[j, 0], c2[j, 1], c2[j, 2] = centers[j, 0], centers[j, 1], centers[j, 2]
        r2[j] = radii[j]
        n2[j] = nxt[j]
    return c2, r2, n2


@njit(cache=True)
def _uniform_pos(s, shape, pos):
    for k in range(3):
        if shape[k] == 1:
            pos[k] = 0.5
        else:
            x = next_double(s) * shape[k]
            pos[k] = x - shape[k] if x >= shape[k] else x


@njit(cache=True)
def rsa_run(s, shape, dim, rmin, rmax, overlap, target, tol, max_attempts, image):
    """Random sequential addition to a target pixel fraction, with restarts.

    Non-overlapping classes draw candidates uniformly in the cell until ``_SWITCH_AFTER``
    consecutive ones overlap an inclusion; from then on a bit map marks the pixels that lie
    entirely within ``r_j + rmin`` of some centre (no candidate fits there), kept up to date,
    and candidates are drawn uniformly in the unblocked pixels (by rejection, or from a list
    of them once fewer than ``_LIST_BELOW`` are free).  Every proposal is uniform over a
    superset of the free space and overlapping candidates are rejected, so the accepted
    centres are those of plain RSA.

    Parameters
    ----------
    s : uint64[4]
        xoshiro256** state (advanced).
    shape : int64[3]
        ``(1, n1, n2)`` (2D) or ``(n1, n2, n3)``: any sides, each ``> 2 rmax``.
    dim : int
    rmin, rmax : float
        Radius range in pixels.
    overlap : bool
    target, tol : float
        Target inclusion fraction and the accepted ``|measured - target|``.
    max_attempts : int
        Bound on the candidates drawn, summed over restarts.
    image : bool[n0 * n1 * n2]
        Output (overwritten).

    Returns
    -------
    status : int
    count : int
        Inclusion pixels.
    attempts : int
    m : int
        Number of inclusions.
    centers : float64 (>= m, 3)
    radii : float64 (>= m,)
        The inclusions are the first ``m`` rows.
    """
    total = shape[0] * shape[1] * shape[2]
    goal = target * total
    tol_c = tol * total
    poly = rmin < rmax
    nmax = max(shape[0], max(shape[1], shape[2]))
    idx = np.empty((3, nmax), dtype=np.int64)
    sq = np.empty((3, nmax))
    pos = np.empty(3)
    box_max = 1
    for k in range(3):
        box_max *= min(shape[k], int(2.0 * rmax) + 2)
    painted = np.empty(box_max, dtype=np.int64)  # pixels set by the candidate (to undo)
    # blocked map: a pixel is blocked if all its points are within r_j + rmin of centre j
    pad = rmin - 0.5 * math.sqrt(dim) - 1e-9
    wpr = (shape[2] + 63) // 64
    bits = np.empty(0 if overlap else shape[0] * shape[1] * wpr, dtype=np.uint64)
    free_list = np.empty(0, dtype=np.int64)
    # cell list: bins of side >= 2 rmax per axis, so only the 3^d neighbouring bins can
    # interact; used when some axis holds at least 3 bins (one bin: all inclusions)
    nb = np.ones(3, dtype=np.int64)
    bin_side = np.ones(3)
    binned = False
    for k in range(3):
        nbin = int(shape[k] // (2.0 * rmax)) if shape[k] > 1 else 1
        if nbin >= 1:
            nb[k] = nbin
            bin_side[k] = shape[k] / nbin
        binned = binned or nbin >= 3
    if not binned:
        nb[:] = 1
    head = np.empty(nb[0] * nb[1] * nb[2], dtype=np.int64)
    cap = 64
    centers = np.empty((cap, 3))
    radii = np.empty(cap)
    nxt = np.empty(cap, dtype=np.int64)
    attempts = 0
    m = 0
    count = 0
    for _restart in range(_RESTARTS):
        image[:] = False
        head[:] = -1
        m = 0
        count = 0
        mapped = False  # blocked map in use
        free = total
        n_list = -1  # free list not built
        misses = 0
        overshoots = 0
        stuck = False
        while count < goal:
            if attempts >= max_attempts:
                return ATTEMPTS, count, attempts, m, centers, radii
            if mapped and free <= 0:
                return JAMMED, count, attempts, m, centers, radii
            attempts += 1
            r = rmin + (rmax - rmin) * next_double(s) if poly else rmin
            if not mapped:
                _uniform_pos(s, shape, pos)
                if not overlap and m > 0:
                    if not _is_clear(pos, r, centers, radii, m, head, nxt, nb, bin_side, shape):
                        misses += 1
                        if misses >= _SWITCH_AFTER and pad + rmin > 0.0:  # crowded: map it
                            mapped = True
                            bits[:] = 0
                            for j in range(m):
                                free -= _block(
                                    bits, wpr, shape, centers[j], radii[j] + pad, idx, sq
                                )
                        continue
                    misses = 0
            else:
                if n_list < 0 and free >= _LIST_BELOW * total:
                    while True:  # uniform in the unblocked pixels, by rejection
                        _uniform_pos(s, shape, pos)
                        p = (int(pos[0]) * shape[1] + int(pos[1])) * shape[2] + int(pos[2])
                        if not _is_set(bits, wpr, shape[2], min(p, total - 1)):
                            break
                else:
                    if n_list < 0:
                        free_list = np.empty(free, dtype=np.int64)
                        n_list = _free_pixels(bits, wpr, shape, free_list)
                    elif n_list > 2 * free + 64:  # mostly stale: compact
                        kept = 0
                        for j in range(n_list):
                            p = free_list[j]
                            if not _is_set(bits, wpr, shape[2], p):
                                free_list[kept] = p
                                kept += 1
                        n_list = kept
                    while True:  # uniform over the listed pixels; drop the ones blocked since
                        j = int(next_double(s) * n_list)
                        p = free_list[j]
                        if not _is_set(bits, wpr, shape[2], p):
                            break
                        n_list -= 1
                        free_list[j] = free_list[n_list]
                    for k in range(2, -1, -1):
                        i = p % shape[k]
                        p //= shape[k]
                        if shape[k] == 1:
                            pos[k] = 0.5
                        else:
                            x = i + next_double(s)
                            pos[k] = x - shape[k] if x >= shape[k] else x
                if not _is_clear(pos, r, centers, radii, m, head, nxt, nb, bin_side, shape):
                    continue
            # -- add it if it helps hitting the target (shrink polydisperse overshoots) --
            under = goal - count
            outcome = _STOP if under <= tol_c else _REJECTED
            for _ in range(_SHRINK_TRIES if poly else 1):
                gain = _paint(image, shape, pos, r, True, idx, sq, painted)
                new_count = count + gain
                over = new_count - goal
                if new_count <= goal or (over <= under and over <= tol_c):
                    count = new_count
                    if m == radii.shape[0]:
                        centers, radii, nxt = _grow(centers, radii, nxt)
                    centers[m, 0], centers[m, 1], centers[m, 2] = pos[0], pos[1], pos[2]
                    radii[m] = r
                    if not overlap:
                        if binned:
                            f = 0
                            for k in range(3):
                                f = f * nb[k] + int(pos[k] // bin_side[k]) % nb[k]
                            nxt[m] = head[f]
                            head[f] = m
                        if mapped:
                            free -= _block(bits, wpr, shape, pos, r + pad, idx, sq)
                    m += 1
                    outcome = _STOP if new_count >= goal else _ADDED
                    break
                for j in range(gain):  # undo
                    image[painted[j]] = False
                if r <= rmin or gain == 0:
                    break
                r = max(rmin, r * (max(under, 1.0) / gain) ** (1.0 / dim))
            if outcome == _STOP:
                break
            overshoots = overshoots + 1 if outcome == _REJECTED else 0
            if overshoots >= _STUCK_AFTER:
                stuck = True
                break
        if not stuck:
            return OK, count, attempts, m, centers, radii
        if attempts >= max_attempts:
            break
    return STUCK, count, attempts, m, centers, radii


@njit(cache=True)
def rsa_batch(states, shape, dim, rmin, rmax, overlap, targets, tol, max_attempts, images, out):
    """:func:`rsa_run` for each row: ``states (N, 4)``, ``targets (N,)``, ``max_attempts (N,)``,
    ``images (N, total)`` (the one entry point of the engine, also for a single SVE).

    A target ``<= 0`` leaves an empty image.  ``out (N, 4)`` receives (status, count,
    attempts, m) per sample; stops at the first sample that fails (status not ``OK``).

    Returns
    -------
    centers : float64 (sum m, 3)
    radii : float64 (sum m,)
        The inclusions of all samples, sample after sample.
    """
    all_c = np.empty((64, 3))
    all_r = np.empty(64)
    used = 0
    for i in range(targets.shape[0]):
        if targets[i] <= 0.0:
            images[i, :] = False
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = OK, 0, 0, 0
            continue
        status, count, attempts, m, c, r = rsa_run(
            states[i], shape, dim, rmin, rmax, overlap, targets[i], tol, max_attempts[i], images[i]
        )
        if used + m > all_r.shape[0]:
            cap = max(2 * all_r.shape[0], used + m)
            grown_c = np.empty((cap, 3))
            grown_r = np.empty(cap)
            for j in range(used):
                for k in range(3):
                    grown_c[j, k] = all_c[j, k]
                grown_r[j] = all_r[j]
            all_c, all_r = grown_c, grown_r
        for j in range(m):
            for k in range(3):
                all_c[used + j, k] = c[j, k]
            all_r[used + j] = r[j]
        used += m
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = status, count, attempts, m
        if status != OK:
            break
    return all_c[:used], all_r[:used]


@njit(cache=True)
def rasterize_balls(centers, radii, shape, image):
    """OR the balls ``centers (m, 3)``, ``radii (m,)`` into the flat bool ``image``."""
    nmax = max(shape[0], max(shape[1], shape[2]))
    idx = np.empty((3, nmax), dtype=np.int64)
    sq = np.empty((3, nmax))
    no_buf = np.empty(0, dtype=np.int64)
    for j in range(radii.shape[0]):
        _paint(image, shape, centers[j], radii[j], True, idx, sq, no_buf)
