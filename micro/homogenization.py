"""First-order periodic asymptotic homogenization of pixel/voxel images with DOLFINx.

For an image on the unit cell ``[0, 1]^d`` with ``n`` pixels per side, every pixel is one Q1
element (quadrilateral in 2D, hexahedron in 3D) with constant permeability.  For each unit
macroscopic field ``e_i`` the periodic fluctuation ``phi_i`` of the scalar potential solves

    find phi_i periodic:  a(phi_i, v) = -a(x_i, v)   for all periodic v,
    a(u, v) = int_V mu grad(u) . grad(v) dx,

and the homogenized tensor is the energy (= flux average, by Hill-Mandel)

    mu*_ij = a(x_i + phi_i, x_j + phi_j) / |V|.

Implementation
--------------
* DOLFINx builds the mesh, the CG1 space and the FFCx-compiled form ``mu grad u . grad v dx``
  with ``mu`` in DG0; they are built once per image shape.
* Periodicity is imposed by condensing the (n+1)^d node grid onto the n^d periodic nodes
  (``P^T K P`` with ``P`` the 0/1 restriction): dofs on opposite faces are *the same* unknown,
  so there are no slave-master chains and nothing to pin.
* The periodic matrix is linear in the pixel values of ``mu``.  With ``assembly="stencil"``
  (default) the Q1 element stencil is read once off DOLFINx assemblies of 2^d pixel colourings
  of a 4^d cell, and a new sample costs 2^d array shifts (:mod:`micro.periodic`); at every
  set-up the result is checked against DOLFINx's own assembly at the actual size for a random
  ``mu``.  ``assembly="dolfinx"`` re-assembles with DOLFINx for every sample (the reference).
* The right-hand side and energies use ``x_i``'s exact Q1 interpolant through the per-entry
  periodic offsets, so no non-periodic vectors are ever formed.
* The solver (``solver=``): in 2D by default (``"mg"``) a CG preconditioned by the compiled
  black-box geometric multigrid of :mod:`micro.multigrid` (BoxMG prolongation, Galerkin coarse
  operators in stencil form, symmetric Gauss-Seidel V-cycle; deflated by the clusters of the
  more permeable phase at high contrast); its fine operator is checked against the periodic
  assembly at set-up.  In 3D, and on 2D grids without a multigrid hierarchy (e.g. odd ``n``),
  PETSc CG with a BoomerAMG (hypre) preconditioner (``"amg"``, :mod:`micro._amg`).  Either way
  the preconditioner is set up once per sample and reused for the ``d`` load cases, CG stops
  on the unpreconditioned residual norm (relative tolerance ``rtol``), and a diverged or
  non-converged solve raises :class:`~magnetohom.errors.SolverError`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import magnetohom.dolfinx_compat as dfx

import numpy as np
import scipy.sparse as sp

from magnetohom.errors import InputError, SolverError
from micro.periodic import (
    entry_map,
    node_stencils,
    periodic_pattern,
    scatter_map,
    stencil_from_scatter,
    stencil_values,
)
from micro.validate import check_contrast

__all__ = [
    "BOUNDARY_CONDITIONS",
    "GAP_TOLERANCE",
    "CellSolution",
    "HomogenizationResult",
    "Homogenizer",
    "homogenize",
]

#: The boundary conditions of the cell problem (paper, Section 2.2): periodic (PBC), uniform
#: Dirichlet ``phi' = 0`` on the boundary (UDBC, apparent tensor from above) and uniform Neumann
#: ``B.n = Bbar.n`` (UNBC, apparent tensor from below).
BOUNDARY_CONDITIONS = ("periodic", "dirichlet", "neumann")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellSolution:
    """Homogenized tensor of one cell.

    Attributes
    ----------
    mu_eff : ndarray, shape (d, d), float64
        Homogenized (apparent) relative permeability, energy-consistent and symmetric.
    flux_mu_eff : ndarray, shape (d, d), float64
        The same from the flux average <mu (e_i + grad phi_i)>; differs from ``mu_eff`` only by
        the solver tolerance (a measure of it).
    iterations : ndarray, shape (d,), int
        CG iterations per load case.
    seconds : float
        Wall time for this cell (assembly, preconditioner, solves), set-up excluded.
    """

    mu_eff: np.ndarray
    flux_mu_eff: np.ndarray
    iterations: np.ndarray
    seconds: float


@dataclass(frozen=True)
class HomogenizationResult:
    """Homogenized tensors of a batch of cells.

    Attributes
    ----------
    mu_eff : ndarray, shape (N, d, d), float64
    iterations : ndarray, shape (N, d), int
    seconds : ndarray, shape (N,), float64
        Wall time per cell after the shared set-up.
    setup_seconds : float
        One-off set-up time (mesh, spaces, forms, assembly maps) for this shape.
    """

    mu_eff: np.ndarray
    iterations: np.ndarray
    seconds: np.ndarray
    setup_seconds: float


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` as a tuple of ints: 2D or 3D, at least 3 pixels along every axis."""
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be a tuple of integers: got {shape!r}") from None
    if len(shape) not in (2, 3):
        raise InputError(f"image must be 2D or 3D: got shape {shape}")
    if min(shape) < 3:
        raise InputError(f"image must have at least 3 pixels per side: got shape {shape}")
    return shape


class Homogenizer:
    """Reusable DOLFINx homogenization of periodic two-phase (or any pixel-wise) cells.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(n_1, n_2)`` or ``(n_1, n_2, n_3)``, every ``n_k >= 3``; axis k is direction
        x_(k+1).  Pixels are square with side ``1 / max(shape)``; the cell is periodic along
        every axis (rectangular cells are solved with ``solver="amg"``).
    comm : mpi4py communicator, optional
        Must have one rank (default ``MPI.COMM_SELF``); to use several ranks, split the samples
        across ranks (see :func:`micro.generate_dataset`).
    rtol : float
        Relative tolerance of CG on the unpreconditioned residual. The tensor is a quadratic
        functional of the solution, so its error is of order ``rtol**2``. Every tensor is
        checked: its energy and flux averages must agree on the diagonal to
        ``max(rtol, GAP_TOLERANCE)`` (relative, 1e-4); at high contrast CG is rerun with
        tolerances down to 1e-12 until they do, else :class:`SolverError` is raised (no wrong
        label is returned). Contrasts above ``micro.validate.MAX_CONTRAST`` (1e10) raise
        :class:`InputError`.
    max_it : int
        Iteration limit per load case (>= 1); reaching it raises :class:`SolverError`.
    assembly : {"stencil", "dolfinx"}
        How the periodic matrix is assembled for each sample (see the module docstring).
    solver : {"mg", "amg"}, optional
        Preconditioner of CG: the geometric multigrid of :mod:`micro.multigrid` (2D grids whose
        side halves at least once and down to at most 1024 nodes, e.g. ``n = 2^k``, ``3 2^k``
        or 100, see :func:`micro.multigrid.multigrid_levels`) or BoomerAMG.  Default: ``"mg"``
        where it applies, else ``"amg"``.
    solver_options : dict, optional
        PETSc options (without leading dash) that override the tuned BoomerAMG defaults,
        e.g. ``{"pc_hypre_boomeramg_strong_threshold": "0.5"}`` (``solver="amg"`` only).
    bc : {"periodic", "dirichlet", "neumann"}
        Boundary condition of the cell problem (paper, Section 2.2): periodic fluctuations
        (PBC, the homogenized tensor), uniform Dirichlet ``phi' = 0`` on the boundary (UDBC,
        :mod:`micro.dirichlet`) or uniform Neumann ``B.n = Bbar.n`` (UNBC, :mod:`micro.neumann`).
        The latter two give *apparent* tensors of a window, with
        ``mu_UNBC <= mu_PBC <= mu_UDBC`` as quadratic forms (``assembly="stencil"`` only; in
        2D CG with the compiled multigrid, ``solver="mg"``, on any rectangle; in 3D CG +
        BoomerAMG).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        comm=None,
        rtol: float = 1e-6,
        max_it: int = 500,
        assembly: str = "stencil",
        solver: str | None = None,
        solver_options: dict[str, str] | None = None,
        bc: str = "periodic",
    ) -> None:
        t0 = time.perf_counter()
        self.shape = _check_shape(shape)
        self.dim = len(self.shape)
        self.n = max(self.shape)  # pixel size 1/n: the longest side has length 1
        self.bc = _check_bc(bc)
        if not (0 < rtol < 1):
            raise InputError(f"rtol must be in (0, 1): got {rtol}")
        if isinstance(max_it, bool) or not isinstance(max_it, int | np.integer) or max_it < 1:
            raise InputError(f"max_it must be an integer >= 1: got {max_it!r}")
        if assembly not in ("stencil", "dolfinx"):
            raise InputError(f"assembly must be 'stencil' or 'dolfinx': got {assembly!r}")
        from mpi4py import MPI

        self.comm = MPI.COMM_SELF if comm is None else comm
        if self.comm.size != 1:
            raise InputError(
                "a cell is solved on one rank: pass a one-rank communicator and split the "
                "samples across ranks instead"
            )
        self.rtol, self.max_it = float(rtol), int(max_it)
        if self.bc != "periodic":
            self._init_apparent(assembly, solver, solver_options)
            self.setup_seconds = time.perf_counter() - t0
            return
        self.solver = _choose_solver(solver, self.shape)
        self._build_fe_space()
        self._build_periodic_pattern()
        self.assembly = assembly
        if assembly == "stencil":
            self._stencil = _element_stencil(self.dim)
            self._verify_stencil()
        if self.solver == "mg":
            self._build_multigrid()
        else:
            from micro._amg import BoomerAMGCG

            self._amg = BoomerAMGCG(
                self._pattern,
                comm=self.comm,
                rtol=self.rtol,
                max_it=self.max_it,
                options=solver_options,
            )
        self.setup_seconds = time.perf_counter() - t0
        log.info(
            "homogenizer %s: %d periodic dofs, %d nonzeros, assembly=%s, solver=%s, set-up %.2f s",
            self.shape,
            int(np.prod(self.shape)),
            self._indices.size,
            self.assembly,
            self.solver,
            self.setup_seconds,
        )

    # -- set-up ---------------------------------------------------------------------------
    def _init_apparent(self, assembly: str, solver: str | None, options) -> None:
        """Set-up for the UDBC/UNBC tensors (:mod:`micro.dirichlet`, :mod:`micro.neumann`)."""
        if assembly != "stencil":
            raise InputError(f"bc={self.bc!r} needs assembly='stencil': got {assembly!r}")
        self.assembly = assembly
        self._build_fe_space()
        self._stencil = _element_stencil(self.dim)
        if self.bc == "dirichlet":
            from micro.dirichlet import DirichletCell as cls
        else:
            from micro.neumann import NeumannCell as cls
        self._apparent = cls(
            self.shape,
            stencil=self._stencil,
            stencil_n=_STENCIL_N,
            rtol=self.rtol,
            max_it=self.max_it,
            comm=self.comm,
            options=options,
            solver=solver,
        )
        self.solver = self._apparent.solver
        self._apparent.grid.verify(self._assemble_dolfinx, self._node_ijk)

    def _build_fe_space(self) -> None:
        import ufl
        from dolfinx import fem, mesh

        n, d = self.n, self.dim
        h = 1.0 / n
        cell = mesh.CellType.quadrilateral if d == 2 else mesh.CellType.hexahedron
        corner = [s * h for s in self.shape]
        if d == 2:
            msh = mesh.create_rectangle(self.comm, [[0.0, 0.0], corner], list(self.shape), cell)
        else:
            msh = mesh.create_box(self.comm, [[0.0, 0.0, 0.0], corner], list(self.shape), cell)
        V = dfx.functionspace(msh, "CG", 1)
        Q = dfx.functionspace(msh, "DG", 0)
        self._mu = fem.Function(Q)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        self._form = fem.form(ufl.inner(self._mu * ufl.grad(u), ufl.grad(v)) * ufl.dx)
        tdim = msh.topology.dim
        n_cells = msh.topology.index_map(tdim).size_local
        mid = mesh.compute_midpoints(msh, tdim, np.arange(n_cells, dtype=np.int32))[:, :d]
        cell_ijk = np.floor(mid * n).astype(np.int64)
        self._cell_to_pixel = np.ravel_multi_index(tuple(cell_ijk.T), self.shape)
        if np.unique(self._cell_to_pixel).size != np.prod(self.shape):
            raise RuntimeError("DOLFINx mesh cells do not map one-to-one onto pixels")
        xdof = V.tabulate_dof_coordinates()[:, :d]
        self._node_ijk = np.rint(xdof * n).astype(np.int32)  # (n_dofs, d) in 0..n
        self._dof_to_periodic = np.ravel_multi_index(
            tuple((self._node_ijk % np.array(self.shape)).T), self.shape
        )
        self._mesh, self._V = msh, V

    def _assemble_dolfinx(self, mu_pixels: np.ndarray):
        from dolfinx import fem

        self._mu.x.array[:] = mu_pixels.ravel()[self._cell_to_pixel]
        return fem.assemble_matrix(self._form)

    def _build_periodic_pattern(self) -> None:
        """Sparsity of ``P^T K P`` and the map from DOLFINx's CSR entries onto it."""
        self._pattern = periodic_pattern(self.shape)
        self._indptr, self._indices = self._pattern.indptr, self._pattern.indices
        K = self._assemble_dolfinx(np.ones(self.shape))
        self._K0 = K
        self._entry_to_periodic = entry_map(
            self._pattern, K.indptr, K.indices, self._node_ijk, self._dof_to_periodic
        )

    def _scatter_map(self) -> sp.csr_matrix:
        """Linear map A with ``K_periodic.data = A @ mu_pixels``, from DOLFINx assemblies."""
        return scatter_map(
            self._pattern, self._assemble_dolfinx, self._K0, self._node_ijk, self._entry_to_periodic
        )

    def _verify_stencil(self) -> None:
        """The stencil assembly must reproduce DOLFINx's assembly at this size to round-off."""
        mu = 1.0 + np.random.default_rng(12345).random(self.shape)
        K = self._assemble_dolfinx(mu)
        ref = np.bincount(self._entry_to_periodic, weights=K.data, minlength=self._indices.size)
        err = np.abs(self._periodic_data(mu) - ref).max()
        if err > 1e-12 * np.abs(ref).max():
            raise RuntimeError(f"stencil assembly differs from DOLFINx assembly ({err:.2e})")

    def _build_multigrid(self) -> None:
        """The multigrid solver; its fine stencil must equal the verified periodic assembly."""
        from micro.multigrid import PeriodicMultigrid, element_matrix

        self._mg = PeriodicMultigrid(self.n)
        if self.assembly == "stencil":
            self._element = element_matrix(
                self._stencil, scale=(_STENCIL_N / self.n) ** (self.dim - 2)
            )
        rng = np.random.default_rng(54321)
        # random values, and a contrast that switches deflation on: loads every compiled kernel
        mu = (1.0 + rng.random(self.shape)) * np.where(rng.random(self.shape) < 0.3, 50.0, 1.0)
        self._mg_setup(mu)
        ref = node_stencils(self._pattern, self._periodic_data(mu)).reshape(*self.shape, 9)
        err = np.abs(self._mg.stencil(0) - ref).max()
        if err > 1e-12 * np.abs(ref).max():
            raise RuntimeError(f"multigrid stencil differs from the periodic assembly ({err:.2e})")
        self._mg.solve(self._mg.coordinate_loads()[0][0], threshold=0.0, max_it=1)

    def _mg_setup(self, mu: np.ndarray) -> None:
        if self.assembly == "stencil":
            self._mg.setup_from_mu(mu, self._element)
        else:
            data = self._periodic_data(mu)
            self._mg.setup(node_stencils(self._pattern, data).reshape(*self.shape, 9))

    # -- per sample -----------------------------------------------------------------------
    def periodic_matrix(self, mu: np.ndarray) -> sp.csr_matrix:
        """The periodic stiffness matrix ``P^T K(mu) P`` as scipy CSR, shape (n^d, n^d)."""
        mu = self._check_mu(mu)
        return sp.csr_matrix(
            (self._periodic_data(mu), self._indices, self._indptr),
            shape=(int(np.prod(self.shape)),) * 2,
        )

    def _periodic_data(self, mu: np.ndarray) -> np.ndarray:
        if self.assembly == "stencil":
            return stencil_values(self._pattern, mu, self._stencil, stencil_n=_STENCIL_N)
        K = self._assemble_dolfinx(mu)
        return np.bincount(self._entry_to_periodic, weights=K.data, minlength=self._indices.size)

    def _check_mu(self, mu: np.ndarray) -> np.ndarray:
        mu = np.asarray(mu, dtype=np.float64)
        if mu.shape != self.shape:
            raise InputError(f"permeability field has shape {mu.shape}, expected {self.shape}")
        if not np.all(np.isfinite(mu)):
            raise InputError("permeability field contains NaN or inf")
        if mu.min() <= 0:
            raise InputError(f"permeability must be > 0: found {mu.min():g}")
        check_contrast(mu.min(), mu.max())
        return mu

    def solve_mu(self, mu: np.ndarray) -> CellSolution:
        """Homogenize one pixel-wise permeability field.

        Parameters
        ----------
        mu : ndarray, shape ``self.shape``, float
            Relative permeability per pixel/voxel (> 0).

        Returns
        -------
        CellSolution
        """
        mu = self._check_mu(mu)
        if self.bc != "periodic":
            return self._apparent.solve(mu)
        t0 = time.perf_counter()
        rtol, total = self.rtol, 0
        while True:
            energy, flux, iterations = self._tensors(mu, rtol, setup=rtol == self.rtol)
            total = total + iterations
            gap = _diagonal_gap(energy, flux)
            if gap <= max(self.rtol, GAP_TOLERANCE):
                break
            if rtol <= _RTOL_FLOOR:
                raise SolverError(
                    f"homogenized tensor of a {self.shape} cell not resolved at contrast "
                    f"{mu.max() / mu.min():.3g}: its energy and flux averages differ by "
                    f"{gap:.2g} (relative) at CG tolerance {rtol:.0e}"
                )
            log.debug("energy/flux gap %.2g at rtol %.0e: solving again", gap, rtol)
            rtol = max(rtol * 1e-3, _RTOL_FLOOR)
        log.debug("cell solved in %s iterations", total.tolist())
        return CellSolution(energy, flux, total, time.perf_counter() - t0)

    def _tensors(
        self, mu: np.ndarray, rtol: float, *, setup: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Energy (symmetrised) and flux tensors and the CG iterations at tolerance ``rtol``
        (``setup``: build the preconditioner for ``mu``; else reuse the last one)."""
        try:
            if self.solver == "mg":
                rhs, phi, Kphi, iterations = self._solve_mg(mu, rtol, setup=setup)
            else:
                rhs, phi, Kphi, iterations = self._solve_amg(mu, rtol)
        except SolverError as exc:
            contrast = mu.max() / mu.min()
            if contrast < 1e6:
                raise
            raise SolverError(f"{exc} (permeability contrast {contrast:.3g})") from None
        d = self.dim
        mean_mu = mu.mean()
        vol = float(np.prod(self.shape)) / self.n**d  # |V| (1 for a square/cubic cell)
        flux = np.empty((d, d))
        energy = np.empty((d, d))
        for i in range(d):
            for j in range(d):
                base = mean_mu if i == j else 0.0
                flux[j, i] = base - _dot(rhs[j], phi[i]) / vol
                energy[i, j] = (
                    base
                    - (_dot(phi[j], rhs[i]) + _dot(phi[i], rhs[j]) - _dot(phi[i], Kphi[j])) / vol
                )
        if not np.all(np.isfinite(energy)):
            raise SolverError(f"non-finite homogenized tensor for a {self.shape} cell")
        energy = 0.5 * (energy + energy.T)
        return energy, flux, np.asarray(iterations)

    def _solve_mg(self, mu: np.ndarray, rtol: float, *, setup: bool = True) -> tuple:
        """Load vectors, fluctuations and their images under K, with the multigrid CG."""
        if setup:
            self._mg_setup(mu)
        return self._mg.solve_cell_problems(rtol=rtol, max_it=self.max_it)

    def _solve_amg(self, mu: np.ndarray, rtol: float) -> tuple:
        """Load vectors, fluctuations and their images under K, with PETSc CG + BoomerAMG."""
        self._amg.rtol = rtol
        try:
            return self._amg.solve_cell_problems(self._periodic_data(mu))
        finally:
            self._amg.rtol = self.rtol

    def __call__(
        self,
        images: np.ndarray,
        *,
        mu_matrix: float = 1.0,
        mu_inclusion: float = 250.0,
        mu: np.ndarray | None = None,
    ) -> HomogenizationResult:
        """Homogenize binary images (True = inclusion) or k-phase label images.

        Parameters
        ----------
        images : ndarray, shape ``(N, *self.shape)`` or ``self.shape``
            bool or 0/1 (True = inclusion); with ``mu``, integer phase labels ``0 .. k-1``.
        mu_matrix, mu_inclusion : float
            Relative permeabilities of the two phases (> 0); ignored when ``mu`` is given.
        mu : sequence of float, shape (k,), optional
            Relative permeability of each phase label (k >= 2, > 0): ``mu[label]`` per pixel.

        Returns
        -------
        HomogenizationResult
            ``mu_eff`` has shape (N, d, d).
        """
        from micro.validate import as_binary_image, as_label_image, check_mu, check_phase_mu

        if mu is None:
            phase_mu = np.array(check_mu(mu_matrix, mu_inclusion))
        else:
            phase_mu = check_phase_mu(mu)
        images = np.asarray(images)
        if images.shape == self.shape:
            images = images[None]
        if images.shape[1:] != self.shape:
            raise InputError(f"images have shape {images.shape[1:]}, expected {self.shape}")
        out_mu = np.empty((len(images), self.dim, self.dim))
        out_it = np.empty((len(images), self.dim), dtype=np.int64)
        out_s = np.empty(len(images))
        for k, image in enumerate(images):
            if mu is None:
                labels = as_binary_image(image, dim=self.dim).view(np.uint8)
            else:
                labels = as_label_image(image, n_phases=phase_mu.size, dim=self.dim)
            sol = self.solve_mu(phase_mu[labels])
            out_mu[k], out_it[k], out_s[k] = sol.mu_eff, sol.iterations, sol.seconds
        return HomogenizationResult(out_mu, out_it, out_s, self.setup_seconds)


def _check_bc(bc: str) -> str:
    if bc not in BOUNDARY_CONDITIONS:
        raise InputError(f"bc must be one of {', '.join(BOUNDARY_CONDITIONS)}: got {bc!r}")
    return bc


def _choose_solver(solver: str | None, shape: tuple[int, ...]) -> str:
    from micro.multigrid import multigrid_levels

    dim, n = len(shape), shape[0]
    square = len(set(shape)) == 1
    supported = dim == 2 and square and multigrid_levels(n) is not None
    if solver is None:
        return "mg" if supported else "amg"
    if solver not in ("mg", "amg"):
        raise InputError(f"solver must be 'mg' or 'amg': got {solver!r}")
    if solver == "mg" and not supported:
        raise InputError(
            f"the multigrid solver needs a square 2D grid that halves at least once and down to "
            f"at most 1024 nodes: got shape {shape}"
        )
    return solver


#: Largest accepted relative disagreement of the energy and flux averages (diagonal) of a
#: tensor (or ``rtol`` if larger). The disagreement tracks the tensor's error: about 1e-14 at
#: contrast 250, 1e-8 at 1e8, 1e-5 at 1e10 with the default ``rtol``.
GAP_TOLERANCE = 1e-4

#: Tightest CG tolerance of the retries of :meth:`Homogenizer.solve_mu`.
_RTOL_FLOOR = 1e-12


def _diagonal_gap(energy: np.ndarray, flux: np.ndarray) -> float:
    """``max_i |energy_ii - flux_ii| / max |energy|``: how far the two averages disagree.

    The difference is the CG residual tested with the solution; at the tolerance it is tiny
    at moderate contrast and grows with it (the off-diagonal flux entries are first order in
    the residual and not used).
    """
    scale = float(np.abs(energy).max())
    if scale == 0.0:
        return math.inf
    return float(np.abs(np.diag(energy) - np.diag(flux)).max()) / scale


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # not np.dot: a threaded BLAS (OMP_NUM_THREADS > 1) wakes its threads for every call, which
    # cost about 1 ms per product between the compiled solves, half the time of a 256^2 sample
    return float(np.einsum("i,i->", a.ravel(), b.ravel()))


_STENCILS: dict[int, list[tuple[int, int, float]]] = {}
_STENCIL_N = 4


def _element_stencil(dim: int) -> list[tuple[int, int, float]]:
    """The Q1 element stencil of ``mu grad u . grad v`` on the uniform grid, from DOLFINx.

    Returns ``(code, corner, value)`` triples: the periodic entry of node p towards neighbour
    offset ``code`` receives ``value * mu[cell p + corner]``.  Read off the DOLFINx assembly of
    a 4^d periodic cell (every cell of the uniform grid has the same element tensor); each
    value must be the same at every node, which is checked.  Values are for pixel size 1/4.
    """
    if dim not in _STENCILS:
        small = Homogenizer((_STENCIL_N,) * dim, assembly="dolfinx", solver="amg")
        _STENCILS[dim] = stencil_from_scatter(small._pattern, small._scatter_map())
    return _STENCILS[dim]


_CACHE: dict[tuple, Homogenizer] = {}


def homogenize(
    images: np.ndarray,
    *,
    mu_matrix: float = 1.0,
    mu_inclusion: float = 250.0,
    mu: np.ndarray | None = None,
    rtol: float = 1e-6,
    dim: int | None = None,
    bc: str = "periodic",
) -> HomogenizationResult:
    """Homogenize one image or a batch of images of one shape.

    A :class:`Homogenizer` per shape and tolerance is kept for the life of the process, so
    repeated calls share the set-up.

    Parameters
    ----------
    images : ndarray, shape (n, n), (n, n, n) or (N, n, ..., n), bool or 0/1
        True = inclusion; axis k is direction x_(k+1).
    mu_matrix, mu_inclusion : float
        Relative permeabilities (defaults 1 and 250, the paper's Table 1).
    mu : sequence of float, shape (k,), optional
        One permeability per phase label of k-phase label images (see :class:`Homogenizer`).
    rtol : float
        CG tolerance (see :class:`Homogenizer`).
    dim : {2, 3}, optional
        Spatial dimension. Needed only for a batch of ``n`` 2D images of ``n x n`` pixels, which
        is otherwise read as one 3D image (and for one rectangular 3D image).
    bc : {"periodic", "dirichlet", "neumann"}
        Boundary condition of the cell problem (see :class:`Homogenizer`).

    Returns
    -------
    HomogenizationResult
    """
    images = np.asarray(images)
    if dim is None:
        cubic = images.ndim == 3 and len(set(images.shape)) == 1
        dim = 2 if images.ndim == 2 or (images.ndim == 3 and not cubic) else 3
    if dim not in (2, 3) or images.ndim not in (dim, dim + 1):
        raise InputError(
            f"expected one {dim}D image or a batch of them: got an array of shape {images.shape}"
        )
    shape = images.shape[-dim:]
    key = (tuple(shape), float(rtol), _check_bc(bc))
    if key not in _CACHE:
        _CACHE[key] = Homogenizer(shape, rtol=rtol, bc=bc)
    return _CACHE[key](images, mu_matrix=mu_matrix, mu_inclusion=mu_inclusion, mu=mu)
