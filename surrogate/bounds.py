"""Analytic bounds and estimates of a two-phase permeability, written once for numpy and graphs.

The formulas use only ``+ - * /`` and ``** 0.5``, so the same function evaluates a numpy array
(the provider, the evaluation, the tests) and a TensorFlow tensor inside the Keras output layer
(:class:`surrogate.layers.AdmissibleLogTensor`). They agree with :mod:`micro.analytic`, which the
tests check when it is installed; this module keeps :mod:`surrogate.layers` free of that import.

All functions take the inclusion volume fraction ``f`` (any shape, values in [0, 1]), the phase
permeabilities ``mu_matrix`` and ``mu_inclusion`` (relative units, > 0) and the dimension ``dim``
(2 or 3), and broadcast over ``f``.

* :func:`wiener` -- Voigt (arithmetic) and Reuss (harmonic) means. For *any* microstructure the
  homogenized tensor satisfies ``reuss * I <= mu_eff <= voigt * I`` in the Loewner order, i.e. all
  its eigenvalues lie in ``[reuss, voigt]``; this is what the default model enforces.
* :func:`hashin_shtrikman` -- the tighter bounds, valid for statistically isotropic composites
  only (a finite, slightly anisotropic SVE may leave them by a little).
* :func:`maxwell_garnett` -- inclusions in a matrix; equals the lower Hashin-Shtrikman bound when
  ``mu_inclusion > mu_matrix``. Used as the default prior of the default model.
* :func:`bruggeman` -- the symmetric self-consistent estimate (percolating at ``f = 1/dim``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BOUNDS", "PRIORS", "bruggeman", "hashin_shtrikman", "maxwell_garnett", "wiener"]

#: Names accepted for the ``bounds`` option of the default model.
BOUNDS = ("wiener", "hashin-shtrikman")
#: Names accepted for the ``prior`` option of the default model (``None`` = middle of the bounds).
PRIORS = ("maxwell-garnett", "bruggeman")


def wiener(f: Any, mu_matrix: float, mu_inclusion: float) -> tuple[Any, Any]:
    """Reuss (lower) and Voigt (upper) means of a two-phase medium.

    Parameters
    ----------
    f
        Inclusion volume fraction, array or tensor of any shape, in [0, 1].
    mu_matrix, mu_inclusion
        Phase permeabilities (relative), > 0.

    Returns
    -------
    (lower, upper)
        Arrays or tensors shaped like ``f``: ``1 / (f/mu_i + (1-f)/mu_m)`` and
        ``f mu_i + (1-f) mu_m``.
    """
    upper = f * mu_inclusion + (1.0 - f) * mu_matrix
    lower = 1.0 / (f / mu_inclusion + (1.0 - f) / mu_matrix)
    return lower, upper


def maxwell_garnett(f: Any, mu_matrix: float, mu_inclusion: float, *, dim: int) -> Any:
    """Maxwell Garnett estimate: isolated spherical/circular inclusions in the matrix.

    ``mu_m + dim f mu_m (mu_i - mu_m) / (mu_i + (dim-1) mu_m - f (mu_i - mu_m))``; shaped like
    ``f``.
    """
    d_mu = mu_inclusion - mu_matrix
    return mu_matrix + dim * f * mu_matrix * d_mu / (
        mu_inclusion + (dim - 1) * mu_matrix - f * d_mu
    )


def hashin_shtrikman(f: Any, mu_matrix: float, mu_inclusion: float, *, dim: int) -> tuple[Any, Any]:
    """Hashin-Shtrikman bounds ``(lower, upper)`` of a statistically isotropic two-phase medium.

    The bound built on the smaller phase permeability is the lower one; each is a Maxwell Garnett
    formula with the roles of the phases chosen accordingly. Shaped like ``f``.
    """
    a = maxwell_garnett(f, mu_matrix, mu_inclusion, dim=dim)  # matrix as host
    b = maxwell_garnett(1.0 - f, mu_inclusion, mu_matrix, dim=dim)  # inclusion as host
    if mu_inclusion >= mu_matrix:
        return a, b
    return b, a


def bruggeman(f: Any, mu_matrix: float, mu_inclusion: float, *, dim: int) -> Any:
    """Symmetric self-consistent (Bruggeman) estimate, the positive root of its quadratic.

    Solves ``f (mu_i - m)/(mu_i + (d-1) m) + (1-f)(mu_m - m)/(mu_m + (d-1) m) = 0`` for ``m``:
    ``m = (b + sqrt(b^2 + 4 (d-1) mu_i mu_m)) / (2 (d-1))`` with
    ``b = f ((d-1) mu_i - mu_m) + (1-f) ((d-1) mu_m - mu_i)``. Shaped like ``f``.
    """
    b = f * ((dim - 1) * mu_inclusion - mu_matrix) + (1.0 - f) * (
        (dim - 1) * mu_matrix - mu_inclusion
    )
    disc = b * b + 4.0 * (dim - 1) * mu_inclusion * mu_matrix
    return (b + disc**0.5) / (2.0 * (dim - 1))
