"""Compiled deflation of the multigrid CG by cluster indicators (private to micro.multigrid).

With a strongly more permeable phase, the error modes that a geometric hierarchy represents
worst are the (nearly) rigid ones: each cluster of that phase at its own constant potential,
the clusters separated by thin gaps of the other phase.  Deflated CG (Vuik, Segal & Meijerink
1999; Tang et al. 2009) removes them exactly: with ``Z`` the node indicators of the clusters,
``E = Z^T A Z`` and ``P = I - A Z E^-1 Z^T``, CG runs on ``P A x~ = P b`` and
``x = x~ + Z E^-1 (Z^T b - (A Z)^T x~)``; the deflated residual ``P b - P A x~`` is the true
residual ``b - A x``, so the stopping test is unchanged.

Clusters are 8-connected (pixels touching at a corner share a Q1 node) and periodic.  A node
belongs to the cluster of the cells around it.  ``A Z`` is non-zero only on nodes whose stencil
sees two labels, and is stored as a list of ``(node, label, value)`` entries.  Labels are
``1..k``; 0 marks the other nodes, and every length-``k + 1`` vector keeps entry 0 at zero.
Vectors are flat quad-layout arrays (see :mod:`micro._mg_setup`).
"""

from __future__ import annotations

import numpy as np

from micro._mg_setup import _jit, _wrap

__all__ = [
    "az_entries",
    "az_subtract",
    "azt_dot",
    "cluster_labels",
    "deflation_matrix",
    "node_labels",
    "small_matvec",
    "z_add",
    "zt_dot",
]


@_jit
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@_jit
def cluster_labels(mask, max_clusters):
    """Periodic 8-connected clusters of ``mask`` (n, n): labels (n, n) int64 and their count.

    Clusters are numbered 1, 2, ... by decreasing size (pixels), ties in raster order of their
    first pixel; only the ``max_clusters`` largest keep a label, the others get 0.
    """
    n = mask.shape[0]
    N = n * n
    parent = np.arange(N)
    for i in range(n):
        for j in range(n):
            if not mask[i, j]:
                continue
            p = i * n + j
            for di, dj in ((0, 1), (1, -1), (1, 0), (1, 1)):
                i2 = _wrap(i + di, n)
                j2 = _wrap(j + dj, n)
                if mask[i2, j2]:
                    a = _find(parent, p)
                    b = _find(parent, i2 * n + j2)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    root_id = np.full(N, -1)
    first = np.empty(N, dtype=np.int64)
    size = np.zeros(N, dtype=np.int64)
    k = 0
    flat = mask.reshape(N)
    for p in range(N):
        if flat[p]:
            r = _find(parent, p)
            if root_id[r] < 0:
                root_id[r] = k
                first[k] = p
                k += 1
            size[root_id[r]] += 1
    order = np.argsort(-size[:k] * N + first[:k])  # larger first, then raster order
    rank = np.empty(k, dtype=np.int64)
    for pos in range(k):
        rank[order[pos]] = pos
    kept = min(k, max_clusters)
    labels = np.zeros((n, n), dtype=np.int64)
    out = labels.reshape(N)
    for p in range(N):
        if flat[p]:
            pos = rank[root_id[_find(parent, p)]]
            out[p] = pos + 1 if pos < kept else 0
    return labels, kept


@_jit
def node_labels(cells, L):
    """Quad node labels ``L`` (4, m, m) from pixel labels ``cells`` (n, n): the label of the
    cells around the node (all labelled cells at a node are one 8-connected cluster)."""
    m = L.shape[1]
    n = 2 * m
    for c in range(4):
        ci = c >> 1
        cj = c & 1
        for I in range(m):
            i = 2 * I + ci
            up = cells[_wrap(i - 1, n)]
            here = cells[i]
            for J in range(m):
                j = 2 * J + cj
                jl = _wrap(j - 1, n)
                L[c, I, J] = max(max(up[jl], up[j]), max(here[jl], here[j]))


@_jit
def az_entries(L, S):
    """The non-zero entries of ``A Z``: ``(node, label, value)`` with ``label > 0``.

    ``L`` (4, m, m) node labels, ``S`` (4, 9, m, m) quad stencil.  Only nodes whose stencil
    sees two labels have such entries (elsewhere the row sums of ``A`` vanish); each node's
    couplings are summed per label.  Returns ``node`` (ne,) flat quad indices, ``label`` (ne,)
    and ``value`` (ne,).
    """
    m = L.shape[1]
    flag = np.zeros((4, m, m), dtype=np.bool_)
    for c in range(4):  # boundary flags, row by row (all 9 labels equal -> zero row of A Z)
        ci = c >> 1
        cj = c & 1
        for I in range(m):
            centre = L[c, I]
            f = flag[c, I]
            for k in range(9):
                gi = ci + k // 3 - 1
                gj = cj + k % 3 - 1
                row = L[2 * (gi & 1) + (gj & 1), _wrap(I + (gi >> 1), m)]
                sh = gj >> 1
                view = row[sh + 1 :]  # index J - 1 is column J + sh
                for J in range(1, m - 1):
                    f[J] |= view[J - 1] != centre[J]
                f[0] |= row[_wrap(sh, m)] != centre[0]
                f[m - 1] |= row[_wrap(m - 1 + sh, m)] != centre[m - 1]
    count = 0
    for c in range(4):
        for I in range(m):
            for J in range(m):
                count += flag[c, I, J]
    node = np.empty(9 * count, dtype=np.int64)
    label = np.empty(9 * count, dtype=np.int64)
    value = np.empty(9 * count)
    nbr = np.empty(9, dtype=np.int64)
    ne = 0
    for c in range(4):
        ci = c >> 1
        cj = c & 1
        for I in range(m):
            for J in range(m):
                if not flag[c, I, J]:
                    continue
                for k in range(9):
                    gi = ci + k // 3 - 1
                    gj = cj + k % 3 - 1
                    row = L[2 * (gi & 1) + (gj & 1), _wrap(I + (gi >> 1), m)]
                    nbr[k] = row[_wrap(J + (gj >> 1), m)]
                start = ne
                for k in range(9):
                    lab = nbr[k]
                    if lab == 0:
                        continue
                    for e in range(start, ne + 1):
                        if e == ne:  # a new label for this node
                            node[ne] = (c * m + I) * m + J
                            label[ne] = lab
                            value[ne] = S[c, k, I, J]
                            ne += 1
                            break
                        if label[e] == lab:
                            value[e] += S[c, k, I, J]
                            break
    return node[:ne].copy(), label[:ne].copy(), value[:ne].copy()


@_jit
def deflation_matrix(L, node, label, value, k):
    """``E = Z^T A Z`` as a (k + 1, k + 1) array (row and column 0 zero)."""
    E = np.zeros((k + 1, k + 1))
    Lf = L.reshape(L.size)
    for e in range(node.size):
        E[Lf[node[e]], label[e]] += value[e]
    E[0, :] = 0.0
    E[:, 0] = 0.0
    return E


@_jit
def zt_dot(L, v, out):
    """``out = Z^T v`` (per-cluster sums of the flat vector ``v``; ``out[0] = 0``)."""
    Lf = L.reshape(L.size)
    out[:] = 0.0
    for p in range(v.size):
        out[Lf[p]] += v[p]
    out[0] = 0.0


@_jit
def z_add(L, c, v):
    """``v += Z c`` (``c[0]`` must be zero)."""
    Lf = L.reshape(L.size)
    for p in range(v.size):
        v[p] += c[Lf[p]]


@_jit
def azt_dot(node, label, value, v, out):
    """``out = (A Z)^T v`` for the flat vector ``v`` (``out[0] = 0``)."""
    out[:] = 0.0
    for e in range(node.size):
        out[label[e]] += value[e] * v[node[e]]


@_jit
def az_subtract(node, label, value, w, v):
    """``v -= (A Z) w`` for the flat vector ``v``."""
    for e in range(node.size):
        v[node[e]] -= value[e] * w[label[e]]


@_jit
def small_matvec(A, x, y):
    """``y = A x`` for a small dense matrix."""
    for i in range(A.shape[0]):
        acc = 0.0
        for j in range(A.shape[1]):
            acc += A[i, j] * x[j]
        y[i] = acc
