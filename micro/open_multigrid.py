"""The compiled multigrid for the non-periodic (UDBC/UNBC) cell problems in 2D.

The full node grid of an ``n_1 x n_2`` window, ``(n_1 + 1) x (n_2 + 1)`` nodes, is embedded in a
periodic ``m x m`` grid with ``m > max(n_k)`` chosen so that :class:`micro.multigrid.
PeriodicMultigrid` has a hierarchy (e.g. ``m = 272`` for ``n = 256``).  The window's stencils
(:meth:`micro.open_grid.OpenGrid.node_stencils`: no coupling across the window's edges) fill the
corner block; every other node of the periodic grid, and every *constrained* node of the window
(UDBC: the boundary; UNBC: one pinned node, which makes the pure Neumann problem non-singular
without changing its solution up to a constant), becomes an identity row with no couplings.  The
operator is then symmetric positive definite, and the BoxMG hierarchy (operator-dependent
prolongation: a node without couplings receives nothing) runs in its non-singular mode.
"""

from __future__ import annotations

import numpy as np

from magnetohom.errors import SolverError
from micro.multigrid import DEFLATION_CONTRAST, PeriodicMultigrid, multigrid_levels

__all__ = ["OpenMultigridCG", "embedding_size"]


def embedding_size(shape: tuple[int, ...]) -> int | None:
    """Smallest periodic side ``m > max(shape)`` with a multigrid hierarchy (None: none found)."""
    lo = max(int(s) for s in shape) + 1
    for m in range(lo, 2 * lo + 64):
        if multigrid_levels(m) is not None:
            return m
    return None


class OpenMultigridCG:
    """Multigrid-preconditioned CG on a window's node grid with constrained (fixed) nodes.

    Parameters
    ----------
    node_shape : tuple of int
        ``(n_1 + 1, n_2 + 1)``.
    constrained : ndarray, shape (N,), bool
        Nodes whose value is fixed to 0 (their right-hand side is ignored).
    rtol : float
        Relative tolerance on the unpreconditioned residual.
    max_it : int
        Iteration limit per solve.
    """

    def __init__(
        self, node_shape: tuple[int, int], constrained: np.ndarray, *, rtol: float, max_it: int
    ) -> None:
        self.node_shape = tuple(int(s) for s in node_shape)
        m = embedding_size(tuple(s - 1 for s in self.node_shape))
        if m is None:
            raise SolverError(f"no multigrid embedding for a node grid {self.node_shape}")
        self.m, self.rtol, self.max_it = m, float(rtol), int(max_it)
        self._mg = PeriodicMultigrid(m, singular=False)
        self._block = (slice(0, self.node_shape[0]), slice(0, self.node_shape[1]))
        fixed = np.ones((m, m), dtype=bool)
        fixed[self._block] = np.asarray(constrained, dtype=bool).reshape(self.node_shape)
        self._fixed = fixed
        # entry k of a node is cut where its neighbour (offset k) is fixed
        self._cut = np.stack(
            [np.roll(fixed, (-(k // 3 - 1), -(k % 3 - 1)), axis=(0, 1)) for k in range(9)], axis=-1
        )
        self._cut[..., 4] = False
        # pixels none of whose corners is fixed: the clusters that may deflate CG
        self._free_pixels = ~(
            fixed
            | np.roll(fixed, -1, axis=0)
            | np.roll(fixed, -1, axis=1)
            | np.roll(fixed, (-1, -1), axis=(0, 1))
        )

    def set_operator(self, stencils: np.ndarray, mu: np.ndarray | None = None) -> None:
        """Set up for new node stencils of the window.

        Parameters
        ----------
        stencils : ndarray, shape (N, 9)
            Offset code ``3 (di + 1) + dj + 1``.
        mu : ndarray, shape (n_1, n_2), optional
            Pixel permeabilities: at a contrast of at least
            :data:`micro.multigrid.DEFLATION_CONTRAST` CG is deflated by the clusters of the
            more permeable phase, as for the periodic problem.
        """
        S = np.zeros((self.m, self.m, 9))
        S[self._block] = stencils.reshape(*self.node_shape, 9)
        centre = S[..., 4]
        scale = float(np.median(centre[self._block][~self._fixed[self._block]]))
        S[self._cut] = 0.0
        S[self._fixed] = 0.0
        S[..., 4] = np.where(self._fixed, scale, centre)
        self._mg.setup(S)
        if mu is not None:
            lo, hi = float(mu.min()), float(mu.max())
            if hi >= DEFLATION_CONTRAST * lo:
                mask = np.zeros((self.m, self.m), dtype=bool)
                mask[: mu.shape[0], : mu.shape[1]] = mu > np.sqrt(lo * hi)
                self._mg.deflate(mask & self._free_pixels)

    def solve(self, b: np.ndarray, *, atol: float = 0.0, what: str = "system") -> tuple:
        """Solve with the fixed nodes at 0, from a zero guess; returns ``(x, iterations)``."""
        B = np.zeros((self.m, self.m))
        B[self._block] = b.reshape(self.node_shape)
        B[self._fixed] = 0.0
        threshold = max(self.rtol * float(np.linalg.norm(B)), float(atol))
        sol = self._mg.solve(B, threshold=threshold, max_it=self.max_it)
        if not sol.converged:
            why = "iteration limit" if sol.status == 0 else "breakdown"
            raise SolverError(
                f"CG did not converge for {what} (multigrid, {why}, {sol.iterations} "
                f"iterations, residual {sol.residual:.3e})"
            )
        return np.ascontiguousarray(sol.x[self._block]).ravel(), sol.iterations
