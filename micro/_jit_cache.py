"""numba's on-disk cache for kernels that call each other across several source files.

numba keys a cached kernel on its own source file only (modification time and size): a
caller whose callee, inlined into its machine code, lives in another file keeps running the
old callee after that file is edited. :func:`group_njit` gives every kernel of a group of
files one freshness stamp, the SHA-256 of all their sources: editing any file of the group
invalidates the cache of every kernel in it, so it cannot go stale (also across checkouts that
keep modification times).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numba as nb
from numba.core import caching

__all__ = ["group_njit", "group_stamp"]

_STAMPS: dict[tuple[str, ...], str] = {}


def group_stamp(files: Sequence[str | Path]) -> str:
    """SHA-256 of the contents of ``files`` (in the given order), computed once per process."""
    key = tuple(str(Path(f).resolve()) for f in files)
    if key not in _STAMPS:
        h = hashlib.sha256()
        for name in key:
            h.update(name.encode() + b"\0" + Path(name).read_bytes() + b"\0")
        _STAMPS[key] = h.hexdigest()
    return _STAMPS[key]


def _locator(base: type, files: tuple[str, ...]) -> type:
    """``base`` (a numba locator class) whose source stamp is the group's."""

    class GroupLocator(base):  # type: ignore[misc, valid-type]
        def get_source_stamp(self) -> Any:
            return ("magnetohom-group", group_stamp(files))

    GroupLocator.__name__ = f"Group{base.__name__}"
    return GroupLocator


def _cache_class(files: tuple[str, ...]) -> type:
    impl = type(
        "GroupCacheImpl",
        (caching.CompileResultCacheImpl,),
        {
            "_locator_classes": [
                _locator(c, files) for c in caching.CompileResultCacheImpl._locator_classes
            ]
        },
    )
    return type("GroupFunctionCache", (caching.FunctionCache,), {"_impl_class": impl})


def group_njit(files: Sequence[str | Path], **options: Any) -> Callable[[Callable], Any]:
    """``numba.njit(**options)`` cached on disk with the freshness stamp of ``files``.

    Parameters
    ----------
    files : sequence of path-like
        Every source file whose kernels call each other (the group).
    **options
        ``numba.njit`` options other than ``cache``.

    Returns
    -------
    callable
        A decorator.
    """
    group = tuple(str(Path(f).resolve()) for f in files)
    cache_class = _cache_class(group)

    def decorate(fn: Callable) -> Any:
        dispatcher = nb.njit(cache=False, **options)(fn)
        dispatcher._cache = cache_class(fn)
        return dispatcher

    return decorate
