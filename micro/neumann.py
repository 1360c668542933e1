"""Apparent permeability of a window under uniform Neumann conditions (UNBC).

Paper, Section 2.2: the normal flux is prescribed by a mean flux density, ``B . n = Bbar . n`` on
``dV``.  For each unit mean flux ``e_j`` the Q1 potential on the window's full node grid
(:class:`micro.open_grid.OpenGrid`) solves the pure Neumann problem

    K rho_j = f_j,    f_j(v) = int_dV (e_j . n) v ds = int_V d_j v dx = (K_1 x_j) . v,

(``K_1`` the operator with ``mu = 1``), singular with the constants as null space and
consistent (``1 . f_j = 0``).  The mean field is ``Hbar_i = f_i . rho_j / |V|``, so the apparent
*compliance* is ``S_ij = f_i . rho_j / |V|`` (= the energy ``rho_i^T K rho_j / |V|``; computed as
``(f_i . rho_j + f_j . rho_i - rho_i^T K rho_j) / |V|``, whose error is of order ``rtol^2``) and the
apparent tensor ``mu^N = S^-1``.  The potentials include all of the periodic ones plus the affine
fields, so ``mu^N <= mu^PBC`` as quadratic forms (a lower bound); a homogeneous window gives
``mu`` exactly (``rho_j = x_j / mu``).
"""

from __future__ import annotations

import time

import numpy as np

from magnetohom.errors import SolverError
from micro._amg import SparseCG
from micro.homogenization import CellSolution
from micro.open_grid import OpenGrid, open_grid_solver
from micro.periodic import Stencil

__all__ = ["NeumannCell"]


class NeumannCell:
    """UNBC apparent tensors of windows of one shape.

    Parameters
    ----------
    shape : tuple of int
        Pixels per axis, every side >= 3.
    stencil, stencil_n
        Element stencil (see :class:`micro.open_grid.OpenGrid`).
    rtol, max_it : float, int
        CG tolerance (unpreconditioned residual) and iteration limit per load case.
    comm : mpi4py communicator
        One rank.
    options : dict, optional
        PETSc options for BoomerAMG.
    solver : {"mg", "amg"}, optional
        Default ``"mg"`` in 2D (one node pinned, :mod:`micro.open_multigrid`), ``"amg"`` in 3D
        (the constants declared as null space), see :func:`micro.open_grid.open_grid_solver`.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        stencil: Stencil,
        stencil_n: int,
        rtol: float,
        max_it: int,
        comm,
        options: dict[str, str] | None = None,
        solver: str | None = None,
    ) -> None:
        self.grid = OpenGrid(shape, stencil=stencil, stencil_n=stencil_n)
        self.shape, self.dim = self.grid.shape, self.grid.dim
        g = self.grid
        ones = np.ones(self.shape)
        K1 = g.matrix(ones)
        self._loads = K1 @ g.coordinates  # (N, d): f_j
        self._load_size = np.linalg.norm(abs(K1) @ np.abs(g.coordinates), axis=0)
        self._solver = open_grid_solver(
            g, None, solver=solver, rtol=rtol, max_it=max_it, comm=comm, options=options
        )
        self.solver = "amg" if isinstance(self._solver, SparseCG) else "mg"

    def solve(self, mu: np.ndarray) -> CellSolution:
        """Apparent tensor of one window.

        Parameters
        ----------
        mu : ndarray, shape ``self.shape``, float64 > 0
            Relative permeability per pixel.

        Returns
        -------
        CellSolution
            ``mu_eff`` (d, d), the UNBC apparent tensor ``S^-1`` of the symmetric compliance;
            ``flux_mu_eff`` the inverse of the energy compliance ``rho^T K rho / |V|`` (equal
            up to the solver tolerance).
        """
        t0 = time.perf_counter()
        g, d = self.grid, self.dim
        data, stencils = g.assemble(mu)
        if self.solver == "mg":
            self._solver.set_operator(stencils, mu)
        else:
            self._solver.set_operator(data)
        F = self._loads
        rho = np.zeros((g.n_nodes, d))  # potentials up to a constant (which S ignores)
        its = np.zeros(d, dtype=np.int64)
        for j in range(d):
            rho[:, j], its[j] = self._solver.solve(
                F[:, j],
                atol=1e-3 * self._solver.rtol * float(self._load_size[j]),
                what=f"UNBC load case {j + 1}",
            )
        FR = F.T @ rho
        RKR = rho.T @ (g.matrix(mu, data) @ rho)
        S = (FR + FR.T - RKR) / g.volume  # stationary in rho: error of order rtol^2
        S_energy = RKR / g.volume
        if not np.all(np.isfinite(S)):
            raise SolverError(f"non-finite UNBC tensor for a {self.shape} window")
        S = 0.5 * (S + S.T)
        try:
            mu_eff = np.linalg.inv(S)
            flux = np.linalg.inv(S_energy)
        except np.linalg.LinAlgError:
            raise SolverError(f"singular UNBC compliance for a {self.shape} window") from None
        mu_eff = 0.5 * (mu_eff + mu_eff.T)
        return CellSolution(mu_eff, flux, its, time.perf_counter() - t0)
