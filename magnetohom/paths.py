"""Checks of output paths, made before any work so that a bad ``-o`` costs nothing.

Every writing command checks its output here first: a path that is a file where a directory is
wanted, that lies under a file, or whose directory cannot be written raises
:class:`~magnetohom.errors.InputError` with one line naming the path, before any computation.
"""

from __future__ import annotations

import os
from pathlib import Path

from magnetohom.errors import InputError

__all__ = ["check_output_dir", "check_output_file"]


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (as anything)."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return p
    return Path(".")


def _check_parent(path: Path, what: str) -> None:
    base = _nearest_existing(path.parent if path.parent != Path("") else Path("."))
    if not base.is_dir():
        raise InputError(f"{what} {path} lies under {base}, which is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path} cannot be written: directory {base} is not writable")


def check_output_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Check that directory ``path`` exists and is writable, or can be created.

    Parameters
    ----------
    path : path-like
    what : str
        How the message names it (``"output directory"``, ``"model directory"``, ...).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        ``path`` is a file, lies under a file, or its directory is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} exists and is not a directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{what} {path} is not writable")
        return path
    _check_parent(path, what)
    return path


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check that file ``path`` can be written (it may exist; a directory there is refused).

    Raises
    ------
    InputError
        ``path`` is a directory, lies under a file, or its directory is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory")
    _check_parent(path, what)
    return path
