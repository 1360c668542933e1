"""Checks of the periodic black-box multigrid (micro.multigrid) and its use in Homogenizer."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from micro_helpers import SVE_CLASSES, random_disks

from magnetohom.errors import InputError, SolverError
from micro.homogenization import Homogenizer, _element_stencil
from micro.multigrid import PeriodicMultigrid, element_matrix, multigrid_levels

MU_M, MU_I = 1.0, 250.0


@pytest.fixture(scope="module")
def element():
    return element_matrix(_element_stencil(2))


def stencil_matrix(S: np.ndarray) -> sp.csr_matrix:
    """Sparse matrix of a natural periodic stencil S (n, n, 9), built independently."""
    n = S.shape[0]
    idx = np.arange(n * n).reshape(n, n)
    rows, cols, vals = [], [], []
    for k in range(9):
        di, dj = k // 3 - 1, k % 3 - 1
        rows.append(idx.ravel())
        cols.append(np.roll(idx, (-di, -dj), axis=(0, 1)).ravel())
        vals.append(S[..., k].ravel())
    A = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n,) * 2
    )
    return A.tocsr()


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (256, (256, 128, 64, 32, 16, 8)),
        (12, (12, 6)),
        (8, (8, 4)),
        (100, (100, 50, 25)),
        (96, (96, 48, 24, 12, 6)),
        (255, None),  # odd: no coarse grid
        (202, None),  # coarsest 101^2 > 1024 nodes
        (4, None),
    ],
)
def test_levels(n, expected):
    assert multigrid_levels(n) == expected


def test_hierarchy_is_galerkin_and_interpolates_constants(element):
    """Coarse stencils equal P^T A P, P reproduces constants, coarse operators stay singular
    symmetric M-like operators (zero row sums, positive centre)."""
    n = 32
    mu = np.exp(3 * np.random.default_rng(0).normal(size=(n, n)))
    mg = PeriodicMultigrid(n, coarse_nodes=16)
    mg.setup_from_mu(mu, element)
    assert mg.levels == (32, 16, 8, 4)
    for lev in range(len(mg.levels) - 1):
        A = stencil_matrix(mg.stencil(lev))
        P = mg.prolongation(lev)
        np.testing.assert_allclose(P @ np.ones(P.shape[1]), 1.0, rtol=0, atol=1e-11)
        Ac = stencil_matrix(mg.stencil(lev + 1))
        ref = (P.T @ A @ P).toarray()
        assert abs(Ac.toarray() - ref).max() <= 1e-12 * abs(ref).max()
        assert abs(Ac - Ac.T).max() == 0.0
        assert abs(Ac @ np.ones(Ac.shape[0])).max() <= 1e-11 * abs(ref).max()
        assert mg.stencil(lev + 1)[..., 4].min() > 0


def test_fine_stencil_matches_periodic_assembly(element):
    """The compiled Q1 stencil from mu equals Homogenizer's (DOLFINx-verified) matrix."""
    n = 16
    mu = 1 + 99 * np.random.default_rng(3).random((n, n))
    mg = PeriodicMultigrid(n)
    mg.setup_from_mu(mu, element)
    K = Homogenizer((n, n), assembly="dolfinx", solver="amg").periodic_matrix(mu)
    A = stencil_matrix(mg.stencil(0))
    assert abs(A - K).max() <= 1e-13 * abs(K).max()
    x = np.random.default_rng(4).random((n, n))
    np.testing.assert_allclose(mg.matvec(x).ravel(), K @ x.ravel(), rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("via", ["mu", "stencil"])
@pytest.mark.parametrize("contrast", [MU_I, 1e4, 1 / MU_I])
def test_vcycle_symmetric_positive_on_zero_mean(element, contrast, via):
    """Matrix-free fine level (from mu) or a given stencil: the cycle is the same operator."""
    n = 64
    image = random_disks(n, 12, 6, seed=5)
    mg = PeriodicMultigrid(n)
    mg.setup_from_mu(np.where(image, contrast, MU_M), element)
    if via == "stencil":
        mg.setup(mg.stencil(0))
    rng = np.random.default_rng(6)
    xs = rng.normal(size=(4, n, n))
    xs -= xs.mean(axis=(1, 2), keepdims=True)
    Ms = [mg.precondition(x) for x in xs]
    for M in Ms:
        assert abs(M.mean()) < 1e-12 * np.abs(M).max()
    for i in range(4):
        assert float(np.vdot(Ms[i], xs[i])) > 0
        for j in range(i):
            a, b = float(np.vdot(Ms[i], xs[j])), float(np.vdot(xs[i], Ms[j]))
            assert abs(a - b) <= 1e-12 * np.sqrt(np.vdot(Ms[i], xs[i]) * np.vdot(Ms[j], xs[j]))
    # constants are the null space: M 1 = 0, and M is blind to the mean of its argument
    np.testing.assert_allclose(mg.precondition(np.ones((n, n))), 0.0, atol=1e-12)
    np.testing.assert_allclose(mg.precondition(xs[0] + 3.0), Ms[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("deflation", [True, False])
def test_pcg_solution_matches_direct_solve(element, deflation):
    n = 64
    image = random_disks(n, 15, 5, seed=8)
    mg = PeriodicMultigrid(n, deflation=deflation)
    mg.setup_from_mu(np.where(image, MU_I, MU_M), element)
    assert (mg.clusters > 0) == deflation
    A = stencil_matrix(mg.stencil(0))
    b = np.random.default_rng(9).normal(size=(n, n))
    b -= b.mean()
    sol = mg.solve(b, threshold=1e-10 * np.linalg.norm(b), max_it=200)
    assert sol.converged and sol.iterations < 40
    # reference: pin node 0 and solve directly, then remove the mean
    keep = np.arange(1, n * n)
    ref = np.zeros(n * n)
    ref[keep] = spla.spsolve(A[keep][:, keep].tocsc(), b.ravel()[keep])
    ref -= ref.mean()
    np.testing.assert_allclose(sol.x.ravel(), ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    assert abs(sol.x.mean()) < 1e-12 * np.abs(sol.x).max()


@pytest.mark.parametrize(
    "kwargs",
    SVE_CLASSES,
)
def test_labels_equal_boomeramg_labels(kwargs):
    """Both solvers stop at rtol 1e-6; the tensor is quadratic in the error: ~1e-9 apart."""
    from micro import generate_sve

    amg = Homogenizer((96, 96), solver="amg")
    mg = Homogenizer((96, 96), solver="mg")
    assert mg.solver == "mg" and Homogenizer((96, 96)).solver == "mg"
    for seed in range(2):
        mu = np.where(generate_sve(dim=2, size=96, rng=seed, **kwargs).image, MU_I, MU_M)
        a, b = amg.solve_mu(mu), mg.solve_mu(mu)
        np.testing.assert_allclose(b.mu_eff, a.mu_eff, rtol=0, atol=1e-7 * a.mu_eff.max())
        np.testing.assert_allclose(b.mu_eff, b.mu_eff.T, rtol=0, atol=1e-12 * a.mu_eff.max())
        assert b.iterations.max() <= 20  # 6-10 at the time of writing


def test_smooth_random_field_labels_equal_boomeramg_labels():
    """A log-normal field: no phases, many contrasts; deflation by the high-mu clusters."""
    n = 64
    mu = np.exp(1.5 * np.random.default_rng(12).normal(size=(n, n)))
    a = Homogenizer((n, n), solver="amg").solve_mu(mu).mu_eff
    b = Homogenizer((n, n), solver="mg").solve_mu(mu).mu_eff
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-7 * a.max())


@pytest.mark.parametrize("n", [12, 64])
def test_laminates_give_exact_means(n):
    h = Homogenizer((n, n), solver="mg")
    for axis in range(2):
        layers = np.zeros(n, bool)
        layers[: n // 3] = True
        image = np.broadcast_to(layers.reshape([-1 if k == axis else 1 for k in range(2)]), (n, n))
        f = image.mean()
        sol = h.solve_mu(np.where(image, MU_I, MU_M))
        expected = np.full(2, f * MU_I + (1 - f) * MU_M)
        expected[axis] = 1 / (f / MU_I + (1 - f) / MU_M)
        np.testing.assert_allclose(sol.mu_eff, np.diag(expected), rtol=1e-10, atol=1e-10)


def test_homogeneous_cell():
    sol = Homogenizer((32, 32), solver="mg").solve_mu(np.full((32, 32), 7.5))
    np.testing.assert_allclose(sol.mu_eff, 7.5 * np.eye(2), rtol=1e-12, atol=1e-12)
    assert sol.iterations.max() == 0  # the loads vanish: stop before the first iteration


@pytest.mark.parametrize("mu_inclusion", [1e4, 1 / MU_I])
def test_high_contrast_converges_in_bounded_iterations(mu_inclusion):
    from micro import generate_sve, hashin_shtrikman

    n = 128
    h = Homogenizer((n, n), solver="mg")
    amg = Homogenizer((n, n), solver="amg")
    sve = generate_sve(dim=2, size=n, radius=4, volume_fraction=0.4, rng=11)
    mu = np.where(sve.image, mu_inclusion, MU_M)
    sol = h.solve_mu(mu)
    assert sol.iterations.max() <= 25  # 13 and 7 at the time of writing
    ref = amg.solve_mu(mu).mu_eff
    np.testing.assert_allclose(sol.mu_eff, ref, rtol=0, atol=1e-7 * ref.max())
    lower, upper = hashin_shtrikman(sve.volume_fraction, MU_M, mu_inclusion, dim=2)
    eig = np.linalg.eigvalsh(sol.mu_eff)
    assert min(lower, upper) <= eig.min() and eig.max() <= max(lower, upper)


def test_clusters_are_periodic_and_corner_connected():
    from micro._mg_deflation import cluster_labels

    mask = np.zeros((8, 8), bool)
    mask[0, 0] = mask[7, 7] = True  # touch at a corner across the periodic boundary
    mask[3, 3] = mask[4, 4] = True  # touch at a corner
    mask[3, 6] = mask[3, 7] = mask[3, 0] = True  # a row across the boundary, the largest
    labels, k = cluster_labels(mask, 10)
    assert k == 3
    assert labels[3, 6] == labels[3, 7] == labels[3, 0] == 1
    assert labels[0, 0] == labels[7, 7] and labels[3, 3] == labels[4, 4]
    assert labels[0, 0] != labels[3, 3] and set(np.unique(labels)) == {0, 1, 2, 3}
    labels, k = cluster_labels(mask, 1)  # only the largest keeps a label
    assert k == 1 and set(np.unique(labels[mask])) == {0, 1}


def test_deflation_cuts_iterations_and_keeps_labels(element):
    """Highly permeable disks close to each other: deflation by their indicators removes the
    near-rigid modes; the solution stays the same."""
    from micro import generate_sve

    n = 128
    image = generate_sve(dim=2, size=n, radius=4, volume_fraction=0.45, rng=3).image
    mu = np.where(image, 1e4, MU_M)
    runs = {}
    for deflation in (False, True):
        mg = PeriodicMultigrid(n, deflation=deflation)
        mg.setup_from_mu(mu, element)
        b = mg.coordinate_loads()[0][0]
        runs[deflation] = mg.solve(b, threshold=1e-10 * np.linalg.norm(b), max_it=300)
    assert mg.clusters > 20
    assert runs[True].iterations < 0.7 * runs[False].iterations
    x0, x1 = runs[False].x, runs[True].x
    np.testing.assert_allclose(x1, x0, rtol=0, atol=1e-7 * np.abs(x0).max())


def test_non_convergence_raises():
    image = random_disks(64, 40, 6, seed=4)
    h = Homogenizer(image.shape, solver="mg", max_it=1, rtol=1e-12)
    with pytest.raises(SolverError, match="did not converge"):
        h.solve_mu(np.where(image, MU_I, MU_M))


def test_dolfinx_assembly_with_multigrid():
    image = random_disks(32, 6, 4, seed=2)
    mu = np.where(image, MU_I, MU_M)
    a = Homogenizer((32, 32), solver="mg").solve_mu(mu).mu_eff
    b = Homogenizer((32, 32), solver="mg", assembly="dolfinx").solve_mu(mu).mu_eff
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_solver_choice():
    assert Homogenizer((9, 9)).solver == "amg"  # odd: no hierarchy, BoomerAMG
    assert Homogenizer((4, 4, 4)).solver == "amg"
    with pytest.raises(InputError, match="multigrid"):
        Homogenizer((9, 9), solver="mg")
    with pytest.raises(InputError, match="multigrid"):
        Homogenizer((4, 4, 4), solver="mg")
    with pytest.raises(InputError, match="solver"):
        Homogenizer((8, 8), solver="lu")


def test_bad_inputs_raise(element):
    with pytest.raises(InputError):
        PeriodicMultigrid(255)
    mg = PeriodicMultigrid(16)
    with pytest.raises(InputError):
        mg.setup_from_mu(np.ones((8, 8)), element)
    with pytest.raises(InputError):
        mg.setup(np.zeros((16, 16, 9)))  # no positive centre
    with pytest.raises(RuntimeError):
        mg.solve(np.ones((16, 16)), threshold=1e-8, max_it=5)


def test_multigrid_kernel_cache_is_keyed_on_all_their_sources(tmp_path):
    """numba keyed each cached kernel on its own file only: a caller in _mg_cycle kept a
    stale copy of an edited _mg_smooth kernel. Every kernel now carries the group's stamp."""
    import numba

    from micro import _mg_cycle, _mg_deflation, _mg_setup, _mg_smooth
    from micro._jit_cache import group_njit, group_stamp

    stamps = set()
    for module in (_mg_setup, _mg_smooth, _mg_cycle, _mg_deflation):
        kernels = [
            v for v in vars(module).values() if isinstance(v, numba.core.dispatcher.Dispatcher)
        ]
        assert kernels, module
        for k in kernels:
            if k.__module__ != module.__name__:
                continue
            stamps.add(k._cache._impl.locator.get_source_stamp())
    assert stamps == {("magnetohom-group", group_stamp(_mg_setup.MG_FILES))}
    assert {p.name for p in _mg_setup.MG_FILES} == {
        p.name for p in Path(_mg_setup.__file__).parent.glob("_mg_*.py")
    }
    # the stamp follows the contents of every file of a group
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    before = group_stamp([a, b])
    b.write_text("y = 3\n")
    from micro import _jit_cache

    _jit_cache._STAMPS.clear()
    assert group_stamp([a, b]) != before

    @group_njit([a, b])
    def twice(x):
        return 2 * x

    assert twice(3) == 6
