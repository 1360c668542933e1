"""PETSc CG with a BoomerAMG (hypre) preconditioner for the periodic cell problems.

Private to :mod:`micro.homogenization` (``solver="amg"``: 3D, 2D grids without a multigrid
hierarchy, and the reference for :mod:`micro.multigrid`).  The periodic matrix has the
sparsity of a :class:`micro.periodic.PeriodicPattern`; its constant null space is removed from
the right-hand sides and declared to PETSc.  The preconditioner is set up once per sample and
reused for the ``d`` load cases.
"""

from __future__ import annotations

import magnetohom.dolfinx_compat  # noqa: F401  (h5py before PETSc's HDF5)

import numpy as np
import scipy.sparse as sp

from magnetohom.errors import SolverError
from micro.periodic import PeriodicPattern, offset_weights

__all__ = ["HYPRE_OPTIONS", "BoomerAMGCG", "SparseCG"]

#: Tuned BoomerAMG options per dimension (PETSc option names without the leading dash).
HYPRE_OPTIONS = {
    2: {
        "pc_hypre_boomeramg_coarsen_type": "HMIS",
        "pc_hypre_boomeramg_interp_type": "ext+i",
        "pc_hypre_boomeramg_P_max": "4",
        "pc_hypre_boomeramg_strong_threshold": "0.25",
        "pc_hypre_boomeramg_relax_type_all": "Jacobi",
        "pc_hypre_boomeramg_agg_nl": "1",
        "pc_hypre_boomeramg_agg_num_paths": "2",
    },
    3: {
        "pc_hypre_boomeramg_coarsen_type": "HMIS",
        "pc_hypre_boomeramg_interp_type": "ext+i",
        "pc_hypre_boomeramg_P_max": "4",
        "pc_hypre_boomeramg_strong_threshold": "0.5",
        "pc_hypre_boomeramg_relax_type_all": "Jacobi",
        "pc_hypre_boomeramg_agg_nl": "1",
    },
}


class BoomerAMGCG:
    """CG + BoomerAMG for the load cases of one periodic grid.

    Parameters
    ----------
    pattern : PeriodicPattern
        Sparsity of the periodic operator.
    comm : mpi4py communicator
        One rank.
    rtol : float
        Relative tolerance on the unpreconditioned residual.
    max_it : int
        Iteration limit per load case.
    options : dict, optional
        PETSc options overriding :data:`HYPRE_OPTIONS`.
    """

    def __init__(
        self,
        pattern: PeriodicPattern,
        *,
        comm,
        rtol: float,
        max_it: int,
        options: dict[str, str] | None = None,
    ) -> None:
        from petsc4py import PETSc

        self.pattern, self.shape = pattern, tuple(pattern.shape)
        self.dim = len(self.shape)
        self.rtol = float(rtol)
        self.options = {**HYPRE_OPTIONS[self.dim], **(options or {})}
        N = int(np.prod(self.shape))
        data = np.zeros(pattern.nnz)
        self._mat = PETSc.Mat().createAIJWithArrays(
            N, (pattern.indptr, pattern.indices, data), comm=comm
        )
        self._nullspace = PETSc.NullSpace().create(constant=True, comm=comm)
        self._mat.setNullSpace(self._nullspace)
        self._ksp = _cg_boomeramg(comm, self.rtol, int(max_it), self.options, f"mh_hom{id(self)}_")
        self._b = self._mat.createVecRight()
        self._x = self._mat.createVecRight()

    def solve_cell_problems(self, data: np.ndarray) -> tuple[list, list, list, np.ndarray]:
        """Solve ``K phi_i = -K x_i`` for every axis i.

        Parameters
        ----------
        data : ndarray, shape (nnz,), float64
            CSR data of the periodic matrix ``K`` in the pattern's structure.

        Returns
        -------
        rhs, phi, images : lists of d ndarrays, shape (n^d,)
            Right-hand sides ``-K x_i``, zero-mean solutions and ``K phi_i``.
        iterations : ndarray, shape (d,), int64

        Raises
        ------
        SolverError
            If CG diverges or reaches its iteration limit.
        """
        d = self.dim
        self._mat.setValuesCSR(self.pattern.indptr, self.pattern.indices, data)
        self._mat.assemble()
        self._ksp.setOperators(self._mat)
        # b_i = -(K x_i) on the periodic nodes: row sums of K times the periodic offsets.
        rhs, scale = [], []
        for i in range(d):
            w = offset_weights(self.pattern, data, i)
            rhs.append(-w.sum(axis=1))
            # size the right-hand side would have without cancellation: absolute tolerance
            # floor, so that a load case with b = 0 up to round-off (laminates) stops at once
            scale.append(np.linalg.norm(np.abs(w).sum(axis=1)))
            del w
        phi = []
        iterations = np.zeros(d, dtype=np.int64)
        for i in range(d):
            self._b.array[:] = rhs[i]
            self._nullspace.remove(self._b)
            self._x.set(0.0)
            self._ksp.setTolerances(rtol=self.rtol, atol=1e-3 * self.rtol * scale[i])
            self._ksp.solve(self._b, self._x)
            reason = self._ksp.getConvergedReason()
            iterations[i] = self._ksp.getIterationNumber()
            if reason <= 0:
                raise SolverError(
                    f"CG did not converge for load case {i + 1} of a {self.shape} cell "
                    f"(PETSc reason {reason}, {iterations[i]} iterations, "
                    f"residual {self._ksp.getResidualNorm():.3e})"
                )
            sol = self._x.array.copy()
            phi.append(sol - sol.mean())
        N = int(np.prod(self.shape))
        K = sp.csr_matrix((data, self.pattern.indices, self.pattern.indptr), shape=(N, N))
        return rhs, phi, [K @ p for p in phi], iterations

    def solve(
        self,
        data: np.ndarray,
        b: np.ndarray,
        *,
        threshold: float,
        preconditioner_data: np.ndarray | None = None,
    ) -> tuple[np.ndarray, int]:
        """Solve ``K x = b`` for one right-hand side (its mean removed), from a zero guess.

        Parameters
        ----------
        data : ndarray, shape (nnz,), float64
            CSR data of ``K`` in the pattern's structure (set up again on every call).
        preconditioner_data : ndarray, shape (nnz,), optional
            CSR data of a spectrally equivalent matrix to build BoomerAMG from instead of ``K``
            (e.g. an isotropic approximation of a tensor-coefficient operator, whose positive
            off-diagonal couplings can make BoomerAMG indefinite).
        b : ndarray, shape (n^d,), float64
        threshold : float
            Stop when the unpreconditioned residual norm is at most this (absolute).

        Returns
        -------
        x : ndarray, shape (n^d,), zero-mean
        iterations : int

        Raises
        ------
        SolverError
            If CG diverges or reaches its iteration limit.
        """
        self._mat.setValuesCSR(self.pattern.indptr, self.pattern.indices, data)
        self._mat.assemble()
        if preconditioner_data is None:
            self._ksp.setOperators(self._mat)
        else:
            if getattr(self, "_pmat", None) is None:
                self._pmat = self._mat.duplicate()
                self._pmat.setNullSpace(self._nullspace)
            self._pmat.setValuesCSR(self.pattern.indptr, self.pattern.indices, preconditioner_data)
            self._pmat.assemble()
            self._ksp.setOperators(self._mat, self._pmat)
        self._b.array[:] = b
        self._nullspace.remove(self._b)
        self._x.set(0.0)
        self._ksp.setTolerances(rtol=1e-300, atol=float(threshold))
        self._ksp.solve(self._b, self._x)
        reason = self._ksp.getConvergedReason()
        its = int(self._ksp.getIterationNumber())
        if reason <= 0:
            raise SolverError(
                f"CG did not converge on a {self.shape} cell (PETSc reason {reason}, {its} "
                f"iterations, residual {self._ksp.getResidualNorm():.3e})"
            )
        x = self._x.array.copy()
        return x - x.mean(), its


def _cg_boomeramg(comm, rtol: float, max_it: int, options: dict[str, str], prefix: str):
    """A PETSc KSP: CG with BoomerAMG, stopping on the unpreconditioned residual norm."""
    from petsc4py import PETSc

    opts = PETSc.Options()
    for key, value in options.items():
        opts[prefix + key] = value
    ksp = PETSc.KSP().create(comm)
    ksp.setOptionsPrefix(prefix)
    ksp.setType("cg")
    ksp.getPC().setType("hypre")
    ksp.getPC().setHYPREType("boomeramg")
    ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
    ksp.setTolerances(rtol=rtol, atol=0.0, max_it=max_it)
    ksp.setFromOptions()
    for key in options:
        del opts[prefix + key]
    return ksp


class SparseCG:
    """CG + BoomerAMG for a sequence of SPD (or constant-null-space) matrices of one sparsity.

    Used by the non-periodic cell problems (:mod:`micro.dirichlet`, :mod:`micro.neumann`).

    Parameters
    ----------
    indptr, indices : ndarray, int32
        CSR structure (square, ``N`` rows).
    dim : {2, 3}
        Selects the tuned :data:`HYPRE_OPTIONS`.
    comm : mpi4py communicator
        One rank.
    rtol : float
        Relative tolerance on the unpreconditioned residual.
    max_it : int
        Iteration limit per solve.
    constant_null_space : bool
        The matrices are singular with the constants as null space (pure Neumann problems):
        right-hand sides and solutions are projected onto the zero-mean vectors.
    options : dict, optional
        PETSc options overriding :data:`HYPRE_OPTIONS`.
    """

    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        *,
        dim: int,
        comm,
        rtol: float,
        max_it: int,
        constant_null_space: bool = False,
        options: dict[str, str] | None = None,
    ) -> None:
        from petsc4py import PETSc

        self.indptr, self.indices = indptr, indices
        self.rtol = float(rtol)
        N = int(indptr.size - 1)
        self._mat = PETSc.Mat().createAIJWithArrays(
            N, (indptr, indices, np.zeros(indices.size)), comm=comm
        )
        self._nullspace = None
        if constant_null_space:
            self._nullspace = PETSc.NullSpace().create(constant=True, comm=comm)
            self._mat.setNullSpace(self._nullspace)
        options = {**HYPRE_OPTIONS[dim], **(options or {})}
        self._ksp = _cg_boomeramg(comm, self.rtol, int(max_it), options, f"mh_cg{id(self)}_")
        self._b = self._mat.createVecRight()
        self._x = self._mat.createVecRight()

    def set_operator(self, data: np.ndarray) -> None:
        """New matrix values (CSR data in the given structure); sets up BoomerAMG."""
        self._mat.setValuesCSR(self.indptr, self.indices, data)
        self._mat.assemble()
        self._ksp.setOperators(self._mat)
        self._ksp.setUp()

    def solve(self, b: np.ndarray, *, atol: float = 0.0, what: str = "system") -> tuple:
        """Solve from a zero guess; returns ``(x, iterations)``.

        Raises
        ------
        SolverError
            If CG diverges or reaches its iteration limit.
        """
        self._b.array[:] = b
        if self._nullspace is not None:
            self._nullspace.remove(self._b)
        self._x.set(0.0)
        self._ksp.setTolerances(rtol=self.rtol, atol=float(atol))
        self._ksp.solve(self._b, self._x)
        reason = self._ksp.getConvergedReason()
        its = int(self._ksp.getIterationNumber())
        if reason <= 0:
            raise SolverError(
                f"CG did not converge for {what} (PETSc reason {reason}, {its} iterations, "
                f"residual {self._ksp.getResidualNorm():.3e})"
            )
        x = self._x.array.copy()
        if self._nullspace is not None:
            x -= x.mean()
        return x, its
