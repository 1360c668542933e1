"""Apparent permeability of a window under uniform Dirichlet conditions (UDBC).

Paper, Section 2.2: the potential is affine on the boundary, ``rho = Hbar . x`` on ``dV``, i.e. the
fluctuation ``phi`` vanishes there.  For each unit field ``e_i`` the Q1 fluctuation on the
window's full node grid (:class:`micro.open_grid.OpenGrid`) solves

    K_II phi_I = -(K x_i)_I,    phi = 0 on the boundary nodes,

and the apparent tensor is the energy ``mu^D_ij = (x_i + phi_i)^T K (x_j + phi_j) / |V|``
(quadratic in the solution, so its error is of order ``rtol^2``).  The fluctuations are a subspace
of the periodic ones, so ``mu^D >= mu^PBC`` as quadratic forms (an upper bound); a homogeneous
window gives ``mu`` exactly (``phi = 0``).

In 2D the system is solved by the compiled multigrid with the boundary nodes fixed
(:mod:`micro.open_multigrid`); in 3D by CG + BoomerAMG (:class:`micro._amg.SparseCG`) on the
grid's matrix whose boundary rows and columns are replaced by their diagonal, so the sparsity,
and the solver object, is the same for every sample.
"""

from __future__ import annotations

import time

import numpy as np

from magnetohom.errors import SolverError
from micro.homogenization import CellSolution
from micro.open_grid import OpenGrid, open_grid_solver
from micro.open_multigrid import OpenMultigridCG
from micro.periodic import Stencil

__all__ = ["DirichletCell"]


class DirichletCell:
    """UDBC apparent tensors of windows of one shape.

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
        Default ``"mg"`` in 2D, ``"amg"`` in 3D (see :func:`micro.open_grid.open_grid_solver`).
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
        rows, cols = g.rows(), g.indices.astype(np.int64)
        bnd = g.boundary
        self._cut = bnd[rows] | bnd[cols]
        self._boundary_diag = np.flatnonzero(bnd[rows] & (rows == cols))
        self._solver = open_grid_solver(
            g, bnd, solver=solver, rtol=rtol, max_it=max_it, comm=comm, options=options
        )
        self.solver = "mg" if isinstance(self._solver, OpenMultigridCG) else "amg"
        scale = abs(g.matrix(np.ones(self.shape))) @ np.abs(g.coordinates)
        scale[bnd] = 0.0
        self._unit_load_size = np.linalg.norm(scale, axis=0)  # (d,), per unit permeability

    def solve(self, mu: np.ndarray) -> CellSolution:
        """Apparent tensor of one window.

        Parameters
        ----------
        mu : ndarray, shape ``self.shape``, float64 > 0
            Relative permeability per pixel.

        Returns
        -------
        CellSolution
            ``mu_eff`` (d, d), the UDBC apparent tensor; ``flux_mu_eff`` the flux average
            ``<B>`` per unit field (equal up to the solver tolerance).
        """
        t0 = time.perf_counter()
        g, d = self.grid, self.dim
        data, stencils = g.assemble(mu)
        K = g.matrix(mu, data)
        X = g.coordinates
        KX = K @ X  # (N, d)
        if self.solver == "mg":
            self._solver.set_operator(stencils, mu)
        else:
            A = data.copy()
            A[self._cut] = 0.0
            A[self._boundary_diag] = data[self._boundary_diag]
            self._solver.set_operator(A)
        # size the loads would have without cancellation (absolute tolerance floor, so that a
        # load that vanishes up to round-off, e.g. along a laminate, stops at once)
        sizes = float(np.max(mu)) * self._unit_load_size
        phi = np.zeros((g.n_nodes, d))
        its = np.zeros(d, dtype=np.int64)
        for i in range(d):
            b = -KX[:, i]
            b[g.boundary] = 0.0
            phi[:, i], its[i] = self._solver.solve(
                b, atol=1e-3 * self._solver.rtol * sizes[i], what=f"UDBC load case {i + 1}"
            )
            phi[g.boundary, i] = 0.0
        U = X + phi  # the potentials x_i + phi_i
        KU = K @ U
        energy = U.T @ KU / g.volume  # quadratic: error of order rtol^2
        flux = X.T @ KU / g.volume  # [j, i] = <B_j> for the field e_i
        if not np.all(np.isfinite(energy)):
            raise SolverError(f"non-finite UDBC tensor for a {self.shape} window")
        energy = 0.5 * (energy + energy.T)
        return CellSolution(energy, flux, its, time.perf_counter() - t0)
