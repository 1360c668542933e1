"""Analytic bounds and estimates of a two-phase permeability for numpy arrays and graphs.

The formulas are those of :mod:`micro.analytic` (its ``*_formula`` functions: plain arithmetic,
no validation), so that the same function evaluates a numpy array (the provider, the
evaluation, the tests) and a TensorFlow tensor inside the Keras output layer
(:class:`surrogate.layers.AdmissibleLogTensor`). This module only names them as the surrogate's
options do.

All functions take the inclusion volume fraction ``f`` (any shape, values in [0, 1]), the phase
permeabilities ``mu_matrix`` and ``mu_inclusion`` (relative units, > 0, scalars) and the
dimension ``dim`` (2 or 3), and broadcast over ``f``.

* :func:`wiener` -- Reuss (harmonic, lower) and Voigt (arithmetic, upper) means. For *any*
  microstructure all eigenvalues of the homogenized tensor lie in ``[reuss, voigt]``; this is
  what the default model enforces.
* :func:`hashin_shtrikman` -- the tighter bounds, valid for statistically isotropic composites
  only (a finite, slightly anisotropic SVE may leave them by a little).
* :func:`maxwell_garnett` -- inclusions in a matrix; equals the lower Hashin-Shtrikman bound when
  ``mu_inclusion > mu_matrix``. Used as the default prior of the default model.
* :func:`bruggeman` -- the symmetric self-consistent estimate (percolating at ``f = 1/dim``).
"""

from __future__ import annotations

from micro.analytic import hashin_shtrikman_formula as hashin_shtrikman
from micro.analytic import maxwell_garnett_formula as maxwell_garnett
from micro.analytic import self_consistent_formula as bruggeman
from micro.analytic import wiener_formula as wiener

__all__ = ["BOUNDS", "PRIORS", "bruggeman", "hashin_shtrikman", "maxwell_garnett", "wiener"]

#: Names accepted for the ``bounds`` option of the default model.
BOUNDS = ("wiener", "hashin-shtrikman")
#: Names accepted for the ``prior`` option of the default model (``None`` = middle of the bounds).
PRIORS = ("maxwell-garnett", "bruggeman")
