"""The constitutive-provider protocol of the macroscale solver, its checks and a registry.

A *constitutive provider* turns a batch of binary SVE images into homogenized permeability
tensors::

    provider(images: bool (N, n, ..., n)) -> float64 (N, d, d), symmetric positive definite

:class:`ConstitutiveProvider` declares everything the macro solver uses of one: ``name``,
``dim``, ``resolution``, ``geometry``, ``mu_phases`` (the phase permeabilities it answers for),
``n_fallback`` and ``warm_up``. The providers of the project implement the protocol by structure
and live in the packages that own the physics; this module's registry owns their names:

=========== =========================================== ========================================
name        class                                       what it does
=========== =========================================== ========================================
``fe``      :class:`micro.providers.FEProvider`         DOLFINx homogenization of every image
``analytic`` :class:`micro.providers.AnalyticProvider`  Hashin-Shtrikman / Maxwell-Garnett of
                                                        the measured volume fraction
``cnn``     :class:`surrogate.provider.CNNProvider`     a specialist CNN (ensemble mean)
``general`` :class:`surrogate.general.GeneralProvider`  the general model: any image, any phases
``hybrid``  :class:`surrogate.general.GeneralProvider`  the general model, FE for every answer
            with ``fallback="fe"``                      whose error bound exceeds ``tolerance``
=========== =========================================== ========================================

They are imported lazily by :func:`get_provider`, so importing :mod:`macro` imports neither
:mod:`micro` nor :mod:`surrogate`. :func:`register_provider` adds a user's own factory.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from magnetohom.errors import InputError

__all__ = [
    "PROTOCOL_MEMBERS",
    "ConstantProvider",
    "ConstitutiveProvider",
    "available_providers",
    "check_materials",
    "check_provider",
    "check_resolution",
    "check_tensors",
    "evaluate_provider",
    "get_provider",
    "provider_name",
    "provider_geometry",
    "provider_model",
    "provider_resolution",
    "register_provider",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class ConstitutiveProvider(Protocol):
    """Homogenized permeability of SVE images: everything the macro solver uses of a provider.

    Attributes
    ----------
    name : str
        Name in messages and reports.
    dim : int
        Spatial dimension d of the images and tensors (2 or 3).
    resolution : int or None
        Image side the provider needs (a specialist CNN's input size: square or cubic images
        of that side only); None: any shape, rectangular cells included.
    geometry : dict
        Microstructure class it was trained on (``{}`` for FE and analytic providers); the
        macro material is matched to it.
    mu_phases : (float, float) or None
        ``(mu_matrix, mu_inclusion)`` it answers for; None for providers that do not depend on
        phase permeabilities (a constant tensor). The macro solver refuses a provider whose
        phases differ from its material's.
    n_fallback : int
        Answers that came from a fallback (FE) so far; 0 for providers without one.
    """

    name: str
    dim: int
    resolution: int | None
    geometry: dict[str, Any]
    mu_phases: tuple[float, float] | None
    n_fallback: int

    def warm_up(self, shape: tuple[int, ...] | None = None) -> float:
        """Do the one-off set-up for images of ``shape`` now; returns its seconds."""
        ...

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(N, d, d)`` float64 SPD relative permeabilities of bool images ``(N, n, ..., n)``."""
        ...


#: The members of :class:`ConstitutiveProvider`.
PROTOCOL_MEMBERS = ("name", "dim", "resolution", "geometry", "mu_phases", "n_fallback", "warm_up")


def check_provider(provider: Any) -> ConstitutiveProvider:
    """The provider itself, once it has every member of :class:`ConstitutiveProvider`.

    Raises
    ------
    InputError
        Naming the missing members.
    """
    missing = [m for m in PROTOCOL_MEMBERS if not hasattr(provider, m)]
    if not callable(provider):
        missing.append("__call__")
    if missing:
        raise InputError(
            f"provider {type(provider).__name__} lacks {', '.join(missing)} of the "
            "ConstitutiveProvider protocol (macro.provider)"
        )
    return provider


def check_materials(provider: ConstitutiveProvider, material: Any) -> None:
    """Refuse a provider that answers for other phase permeabilities than the material's.

    ``material`` has ``mu_matrix`` and ``mu_inclusion`` (a :class:`macro.material.Material`);
    a provider whose ``mu_phases`` is None (a constant tensor) takes any.
    """
    have = provider.mu_phases
    if have is None:
        return
    mu_matrix, mu_inclusion = material.mu_matrix, material.mu_inclusion
    if not np.allclose(have, (mu_matrix, mu_inclusion), rtol=1e-12, atol=0):
        raise InputError(
            f"provider {provider.name!r} answers for mu_matrix {have[0]:g}, mu_inclusion "
            f"{have[1]:g} but the material has {mu_matrix:g}, {mu_inclusion:g}"
        )


def provider_name(provider: ConstitutiveProvider) -> str:
    """The provider's ``name``, else its class name."""
    return str(provider.name) if getattr(provider, "name", None) else type(provider).__name__


def check_tensors(
    mu: Any,
    *,
    dim: int,
    n: int | None = None,
    provider: str = "provider",
    rtol: float = 1e-8,
) -> np.ndarray:
    """Validate provider output: finite, symmetric, positive definite tensors.

    Parameters
    ----------
    mu : array_like, shape (N, d, d)
        Relative permeability tensors.
    dim : int
        Expected d.
    n : int, optional
        Expected N.
    provider : str
        Name used in the error message.
    rtol : float
        Tolerance of the symmetry check, relative to the largest entry of each tensor.

    Returns
    -------
    ndarray, shape (N, d, d), float64
        The symmetrised tensors ``(mu + mu^T) / 2`` (a new array).

    Raises
    ------
    InputError
        Wrong shape, a non-finite entry, an asymmetric or a non-positive-definite tensor; the
        message names the provider and the first offending sample.
    """
    arr = np.asarray(mu, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (dim, dim) or (n is not None and arr.shape[0] != n):
        want = f"({n if n is not None else 'N'}, {dim}, {dim})"
        raise InputError(f"{provider} returned tensors of shape {arr.shape}, expected {want}")
    if arr.shape[0] == 0:
        return arr.copy()
    finite = np.all(np.isfinite(arr), axis=(1, 2))
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise InputError(
            f"{provider} returned a non-finite tensor for sample {k}: {arr[k].tolist()}"
        )
    scale = np.abs(arr).max(axis=(1, 2))
    asym = np.abs(arr - arr.transpose(0, 2, 1)).max(axis=(1, 2))
    bad = asym > rtol * np.maximum(scale, np.finfo(float).tiny)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{provider} returned a non-symmetric tensor for sample {k}: {arr[k].tolist()}"
        )
    sym = 0.5 * (arr + arr.transpose(0, 2, 1))
    eig_min = np.linalg.eigvalsh(sym)[:, 0]
    bad = eig_min <= 1e-12 * scale
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{provider} returned a tensor that is not positive definite for sample {k} "
            f"(smallest eigenvalue {eig_min[k]:.3g}): {arr[k].tolist()}"
        )
    return sym


def evaluate_provider(
    provider: ConstitutiveProvider, images: np.ndarray, *, dim: int
) -> np.ndarray:
    """Call ``provider(images)`` and validate the answer with :func:`check_tensors`.

    Parameters
    ----------
    provider : ConstitutiveProvider
    images : ndarray, shape (N, n, ..., n), bool
    dim : int
        Dimension of the macro problem; a provider of another dimension is refused.

    Returns
    -------
    ndarray, shape (N, d, d), float64
    """
    name = provider_name(provider)
    if int(provider.dim) != dim:
        raise InputError(f"provider {name!r} is {provider.dim}D but the macro problem is {dim}D")
    images = np.asarray(images)
    if images.shape[0] == 0:
        return np.zeros((0, dim, dim))
    out = provider(images)
    out = getattr(out, "mu_eff", out)
    return check_tensors(out, dim=dim, n=images.shape[0], provider=f"provider {name!r}")


class ConstantProvider:
    """A provider that returns the same tensor for every image (homogeneous regions, tests).

    Parameters
    ----------
    mu : float or array_like, shape (d, d)
        Relative permeability; a scalar means ``mu * I``.
    dim : int, optional
        Spatial dimension d (default: from the shape of ``mu``, 2 for a scalar).
    name : str
        Name in reports.
    """

    def __init__(self, mu: Any, *, dim: int | None = None, name: str = "constant") -> None:
        arr = np.asarray(mu, dtype=np.float64)
        if dim is None:
            dim = arr.shape[0] if arr.ndim == 2 else 2
        if dim not in (2, 3):
            raise InputError(f"dim must be 2 or 3: got {dim!r}")
        if arr.ndim == 0:
            arr = float(arr) * np.eye(dim)
        self.mu = check_tensors(arr[None], dim=dim, provider=f"provider {name!r}")[0]
        self.dim = dim
        self.name = name
        self.resolution: int | None = None
        self.geometry: dict[str, Any] = {}
        self.mu_phases: tuple[float, float] | None = None
        self.n_fallback = 0

    def warm_up(self, shape: tuple[int, ...] | None = None) -> float:
        """Nothing to set up."""
        return 0.0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(N, d, d)`` copies of the tensor."""
        return np.broadcast_to(self.mu, (len(images), self.dim, self.dim)).copy()


# -- registry -------------------------------------------------------------------------------
_FACTORIES: dict[str, str | Callable[..., Any]] = {
    "fe": "micro.providers:FEProvider",
    "analytic": "micro.providers:AnalyticProvider",
    "cnn": "macro.provider:_make_cnn",
    "general": "macro.provider:_make_general",
    "hybrid": "macro.provider:_make_hybrid",
}


def register_provider(name: str, factory: Callable[..., Any]) -> None:
    """Make ``get_provider(name, **kw)`` call ``factory(**kw)``."""
    if not name or not isinstance(name, str):
        raise InputError(f"provider name must be a non-empty string: got {name!r}")
    _FACTORIES[name] = factory


def available_providers() -> tuple[str, ...]:
    """Registered provider names."""
    return tuple(_FACTORIES)


def _resolve(spec: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(spec):
        return spec
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def get_provider(name: str, **options: Any) -> Any:
    """Build a provider by name; its package is imported now, not before.

    Parameters
    ----------
    name : {"fe", "analytic", "cnn", "hybrid"} or a name given to :func:`register_provider`
    **options
        Keyword arguments of the provider's class, e.g. ``mu_matrix``, ``mu_inclusion``,
        ``dim`` for ``fe``/``analytic``; ``model`` for ``cnn``/``hybrid``.

    Raises
    ------
    InputError
        Unknown name (the message lists the known ones).
    """
    if name not in _FACTORIES:
        raise InputError(f"unknown provider {name!r}; known: {', '.join(_FACTORIES)}")
    factory = _resolve(_FACTORIES[name])
    provider = check_provider(factory(**options))
    logger.debug("provider %r: %s", name, type(provider).__name__)
    return provider


def _cnn_options(options: dict[str, Any]) -> tuple[Any, dict[str, Any], int | None]:
    model = options.pop("model", None)
    dim = options.pop("dim", None)
    return model, options, dim


def _make_cnn(**options: Any) -> Any:
    """``surrogate.provider.CNNProvider`` (``model=None``: the pretrained default)."""
    from surrogate.provider import CNNProvider

    model, rest, dim = _cnn_options(dict(options))
    rest.pop("rtol", None)
    provider = CNNProvider(model, **rest)
    _check_dim(provider, dim)
    provider.name = "cnn"
    return provider


def _make_general(**options: Any) -> Any:
    """``surrogate.general.GeneralProvider`` (any image, the material's phases, no fallback)."""
    from surrogate.general import GeneralProvider

    return _general(GeneralProvider, options, fallback=None)


def _make_hybrid(**options: Any) -> Any:
    """FE where the surrogate is not trusted.

    With the general model (the default): FE for every answer whose error bound exceeds
    ``tolerance``. With a specialist CNN (``model=``): ``surrogate.hybrid.HybridProvider``, FE for
    flagged samples (spread, volume fraction, image size).
    """
    from surrogate.registry import is_general

    if is_general(options.get("model") or "general"):
        from surrogate.general import GeneralProvider

        provider = _general(GeneralProvider, options, fallback="fe")
        provider.name = "hybrid"
        return provider
    from micro.providers import FEProvider
    from surrogate.hybrid import HybridProvider
    from surrogate.provider import CNNProvider

    model, rest, dim = _cnn_options(dict(options))
    rest.pop("tolerance", None)
    spread = rest.pop("spread_threshold", 0.05)
    rtol = rest.pop("rtol", None)
    cnn = CNNProvider(model, spread_threshold=spread, **rest)
    fe_opts: dict[str, Any] = {"dim": cnn.dim, "mu_matrix": cnn.mu_phases[0],
                               "mu_inclusion": cnn.mu_phases[1]}  # fmt: skip
    if rtol is not None:
        fe_opts["rtol"] = rtol
    provider = HybridProvider(cnn, FEProvider(**fe_opts), spread_threshold=spread)
    _check_dim(cnn, dim)
    provider.name = "hybrid"
    return provider


def _general(cls: Any, options: dict[str, Any], *, fallback: str | None) -> Any:
    opts = dict(options)
    dim = opts.pop("dim", None)
    if dim is not None and int(dim) != 2:
        raise InputError(f"the general model is 2D but {dim}D was asked for")
    model = opts.pop("model", None) or "general"
    return cls(model, fallback=fallback, **opts)


def _check_dim(provider: Any, dim: int | None) -> None:
    if dim is not None and int(provider.dim) != int(dim):
        raise InputError(f"provider is {provider.dim}D but {dim}D was asked for")


def provider_geometry(provider: ConstitutiveProvider) -> dict[str, Any]:
    """Microstructure class a provider was trained on (a copy of its ``geometry``)."""
    return dict(provider.geometry or {})


def provider_resolution(provider: ConstitutiveProvider) -> int | None:
    """Image side a provider requires, ``None`` if any."""
    return None if provider.resolution is None else int(provider.resolution)


def provider_model(provider: ConstitutiveProvider) -> str | None:
    """Name of the trained model behind a provider (a CNN's, a hybrid's CNN's), else None."""
    for obj in (provider, getattr(provider, "cnn", None)):
        name = getattr(getattr(obj, "bundle", None), "name", None)
        if name:
            return str(name)
    return None


def check_resolution(
    provider: ConstitutiveProvider, resolution: int | tuple[int, ...] | None
) -> int | None:
    """The SVE side a provider fixes, after checking that it fits a material's resolution.

    Parameters
    ----------
    provider : ConstitutiveProvider
    resolution : int or tuple of int or None
        The material's: pixels per side, a rectangular cell's shape, or None (any).

    Returns
    -------
    int or None
        :func:`provider_resolution`.

    Raises
    ------
    InputError
        The provider takes square (cubic) images of one side only and the material asks for
        another side or for rectangular cells (one line naming the provider, its model and
        what it takes).
    """
    fixed = provider_resolution(provider)
    if fixed is None or resolution is None:
        return fixed
    sides = (resolution,) if isinstance(resolution, int | np.integer) else tuple(resolution)
    if set(int(v) for v in sides) == {fixed}:
        return fixed
    model = provider_model(provider)
    who = f"provider {provider_name(provider)!r}" + (f" (model {model!r})" if model else "")
    if len(set(sides)) > 1:
        asked = "x".join(str(int(v)) for v in sides)
        kind = "square" if int(provider.dim) == 2 else "cubic"
        raise InputError(
            f"{who} takes {kind} SVEs of {fixed} px per side only; the material asks for "
            f"rectangular {asked} SVEs (use the fe provider for rectangular cells)"
        )
    raise InputError(f"{who} needs {fixed}-pixel SVEs but the material asks for {int(sides[0])}")
