"""FE² macroscale magnetostatics with a constitutive provider at every quadrature point.

Light to import: this module exposes the provider protocol and its helpers eagerly (numpy
only); the DOLFINx parts (:mod:`macro.coefficient`, :mod:`macro.solve`, :mod:`macro.geometry`,
:mod:`macro.compare`) are imported by name when used, e.g. ``from macro.solve import ...``.
Neither :mod:`micro` nor :mod:`surrogate` is imported here: their providers are looked up by
name with :func:`macro.provider.get_provider`.
"""

from macro.provider import (
    ConstantProvider,
    ConstitutiveProvider,
    available_providers,
    check_tensors,
    get_provider,
    register_provider,
)

__all__ = [
    "ConstantProvider",
    "ConstitutiveProvider",
    "available_providers",
    "check_tensors",
    "get_provider",
    "register_provider",
]
