"""Nonlinear cell problem (micro.nonlinear): linear limit, laminates, convexity, derivatives."""

import numpy as np
import pytest
from scipy.optimize import brentq

from magnetohom.errors import InputError, SolverError
from micro.homogenization import Homogenizer
from micro.nonlinear import NonlinearHomogenizer
from micro.phase_laws import MU0, ArctanLaw, FrohlichKennellyLaw, LinearLaw

INCL = ArctanLaw(1000.0, 1.5)
MATRIX = FrohlichKennellyLaw(200.0, 1.0)


def disk(n: int, f: float) -> np.ndarray:
    r = np.sqrt(f / np.pi) * n
    g = np.indices((n, n)) + 0.5 - n / 2
    return (g**2).sum(0) < r**2


def ellipse(n: int) -> np.ndarray:
    g = (np.indices((n, n)) + 0.5 - n / 2) / n
    return (g[0] / 0.35) ** 2 + (g[1] / 0.2) ** 2 + 0.8 * g[0] * g[1] / 0.05 < 1


def sphere(n: int, f: float) -> np.ndarray:
    r = (3 * f / (4 * np.pi)) ** (1 / 3) * n
    g = np.indices((n, n, n)) + 0.5 - n / 2
    return (g**2).sum(0) < r**2


@pytest.mark.parametrize("image", [ellipse(16), sphere(8, 0.2)], ids=["2d", "3d"])
def test_small_field_limit_is_linear_mu(image):
    d = image.ndim
    lin = Homogenizer(image.shape, rtol=1e-10).solve_mu(np.where(image, INCL.mu_r, 1.0))
    nh = NonlinearHomogenizer(image.shape)
    H = 1e-4 * INCL.knee_field * np.arange(1, d + 1)
    res = nh.solve(image, [LinearLaw(1.0), INCL], H)
    np.testing.assert_allclose(res.tangent / MU0, lin.mu_eff, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(res.B / MU0, lin.mu_eff @ H, rtol=1e-6, atol=1e-8 * H.max())


def _series(f: float, H: float) -> tuple[float, float]:
    def gap(b):
        return f * INCL.inverse(b)[0] + (1 - f) * MATRIX.inverse(b)[0] - H

    B = brentq(gap, 1e-12, MU0 * 2000 * H + 10, xtol=1e-15, rtol=1e-14)
    h1, h0 = INCL.inverse(B)[0], MATRIX.inverse(B)[0]
    tan = 1 / (f / INCL.curve(h1)[1] + (1 - f) / MATRIX.curve(h0)[1])
    return B, tan


@pytest.mark.parametrize("shape", [(12, 12), (6, 6, 6)])
@pytest.mark.parametrize("scale", [0.5, 3.0, 30.0])
def test_laminate_matches_series_and_parallel(shape, scale):
    d, n = len(shape), shape[0]
    layers = np.zeros(n, bool)
    layers[: n // 3] = True
    image = np.broadcast_to(layers.reshape([-1] + [1] * (d - 1)), shape)
    f = image.mean()
    nh = NonlinearHomogenizer(shape)
    Hm = scale * MATRIX.knee_field
    # parallel: field along the layers, B_bar = <B(H_bar)>
    H = np.zeros(d)
    H[1] = Hm
    res = nh.solve(image, [MATRIX, INCL], H)
    b1, t1 = INCL.curve(np.array(Hm))[:2]
    b0, t0 = MATRIX.curve(np.array(Hm))[:2]
    np.testing.assert_allclose(res.B[1], f * b1 + (1 - f) * b0, rtol=1e-9)
    np.testing.assert_allclose(res.tangent[1, 1], f * t1 + (1 - f) * t0, rtol=1e-7)
    # series: field across the layers, H_bar = <H(B_bar)>
    H = np.zeros(d)
    H[0] = Hm
    res = nh.solve(image, [MATRIX, INCL], H)
    B, tan = _series(f, Hm)
    np.testing.assert_allclose(res.B[0], B, rtol=1e-9)
    np.testing.assert_allclose(res.tangent[0, 0], tan, rtol=1e-6)
    np.testing.assert_allclose(res.B[1:], 0, atol=1e-12)


def test_coenergy_convex_and_derivatives():
    image = ellipse(16)
    nh = NonlinearHomogenizer(image.shape, rtol=1e-11)
    laws = [MATRIX, INCL]
    rng = np.random.default_rng(3)
    k = MATRIX.knee_field
    for _ in range(2):
        a, b = rng.normal(size=(2, 2)) * 3 * k
        ts = np.linspace(0, 1, 9)
        psi = np.array([nh.solve(image, laws, a + t * (b - a)).coenergy for t in ts])
        assert np.all(psi[:-2] - 2 * psi[1:-1] + psi[2:] > 0)
    H = np.array([2.0, -1.3]) * k
    res = nh.solve(image, laws, H)
    eps = 1e-4 * k
    for i in range(2):
        e = np.zeros(2)
        e[i] = eps
        rp, rm = nh.solve(image, laws, H + e), nh.solve(image, laws, H - e)
        np.testing.assert_allclose((rp.coenergy - rm.coenergy) / (2 * eps), res.B[i], rtol=1e-6)
        np.testing.assert_allclose((rp.B - rm.B) / (2 * eps), res.tangent[:, i], rtol=1e-5)
    assert np.linalg.eigvalsh(res.tangent).min() > 0
    assert res.residuals[-1] <= 1e-11


def test_tangent_operator_matches_dolfinx_assembly():
    """The tensor-coefficient Q1 operator against DOLFINx (DG0 tensor coefficient)."""
    import magnetohom.dolfinx_compat as dfx

    import ufl
    from dolfinx import fem

    shape = (6, 6)
    h = Homogenizer(shape, assembly="dolfinx", solver="amg")
    rng = np.random.default_rng(0)
    A = rng.normal(size=(36, 2, 2))
    D = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(2)
    T = dfx.functionspace(h._mesh, "DG", 0, (2, 2))
    Df = fem.Function(T)
    Df.x.array[:] = D[h._cell_to_pixel].ravel()
    u, v = ufl.TrialFunction(h._V), ufl.TestFunction(h._V)
    K = fem.assemble_matrix(fem.form(ufl.inner(Df * ufl.grad(u), ufl.grad(v)) * ufl.dx))
    ref = np.bincount(h._entry_to_periodic, weights=K.data, minlength=h._indices.size)
    data = NonlinearHomogenizer(shape).assemble(D)
    np.testing.assert_allclose(data, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_diverging_newton_raises_and_bad_input():
    image = ellipse(16)
    nh = NonlinearHomogenizer(image.shape, max_newton=2)
    with pytest.raises(SolverError, match="Newton did not converge"):
        nh.solve(image, [MATRIX, INCL], [50 * MATRIX.knee_field, 0.0])
    with pytest.raises(InputError, match="H_bar"):
        nh.solve(image, [MATRIX, INCL], [1.0, np.nan])
    with pytest.raises(InputError, match="laws given"):
        nh.solve(image.astype(int) * 2, [MATRIX, INCL], [1.0, 0.0])


def test_sweep_continuation_saves_newton_iterations():
    image = ellipse(16)
    nh = NonlinearHomogenizer(image.shape)
    fields = np.outer(np.linspace(0.5, 10, 8), [1.0, 0.5]) * MATRIX.knee_field
    swept = nh.sweep(image, [MATRIX, INCL], fields)
    cold = [nh.solve(image, [MATRIX, INCL], H) for H in fields]
    for s, c in zip(swept, cold, strict=True):
        np.testing.assert_allclose(s.B, c.B, rtol=1e-8)
    assert sum(r.newton_iterations for r in swept) < sum(r.newton_iterations for r in cold)
