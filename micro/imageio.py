"""Reading and writing binary microstructure images (``.npy``, ``.png``, ``.tif``/``.tiff``).

Conventions (see ``docs/ARCHITECTURE.md``):

* in memory an image is a bool array of shape ``(n,)*d``, True = inclusion;
* ``.npy`` files hold bool, or numbers that are all 0/1 (1 = inclusion);
* 8-bit image files follow the paper: grey level 0 = inclusion, 255 = matrix.  A binarised
  micrograph loads the same way: exactly the grey levels {0, 255} are accepted; RGB(A) is
  accepted when the three colour channels are equal (grey) and any alpha is opaque;
* 3D images are multi-page TIFF stacks whose page index is axis 0.

Every loaded array goes through :func:`micro.validate.as_binary_image` (square/cubic, 2D or 3D).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError
from micro.validate import as_binary_image, check_image_shape, format_values

__all__ = ["IMAGE_SUFFIXES", "load_image", "load_images", "read_array", "save_image"]

log = logging.getLogger(__name__)

#: File suffixes understood by :func:`load_image` / :func:`save_image`.
IMAGE_SUFFIXES = (".npy", ".png", ".tif", ".tiff")

_INCLUSION_GREY = 0
_MATRIX_GREY = 255


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(
            f"unsupported image format {path.suffix or '(none)'!r} for {path} "
            "(use .npy, .png, .tif or .tiff)"
        )
    return suffix


def _grey_to_binary(grey: np.ndarray, path: Path) -> np.ndarray:
    """Map the paper's 8-bit convention (0 = inclusion, 255 = matrix) to bool (True = inclusion)."""
    values = np.unique(grey)
    if not np.isin(values, (_INCLUSION_GREY, _MATRIX_GREY)).all():
        raise InputError(
            f"{path} is not a binary image: found grey levels {format_values(values)} "
            "(expected 0 = inclusion, 255 = matrix)"
        )
    return grey == _INCLUSION_GREY


def _unreadable(path: Path, kind: str, exc: BaseException) -> InputError:
    """``cannot read PATH as KIND: reason`` (an empty file named as such)."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        return InputError(f"cannot read {path} as {kind}: the file is empty (0 bytes)")
    text = " ".join(str(exc).split())[:200] or type(exc).__name__
    return InputError(f"cannot read {path} as {kind}: {text}")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:  # object arrays, empty, truncated, corrupt
        raise _unreadable(path, "a .npy array", exc) from None


def _load_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == "1":
                im = im.convert("L")
            elif mode in ("P", "PA"):  # palette: expand, then check the colours are grey
                im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
            mode = im.mode
            if mode.startswith("I;16") or mode == "I":  # 16-bit grey
                arr = np.asarray(im).astype(np.uint16 if mode.startswith("I;16") else np.int64)
                return arr
            if mode not in ("L", "LA", "RGB", "RGBA"):
                raise InputError(
                    f"{path}: PNG mode {mode!r} not supported (expected 8/16-bit grey or RGB)"
                )
            arr = np.asarray(im)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _unreadable(path, "a PNG image", exc) from None
    return _drop_colour(arr, path, channels=mode not in ("L",))


def _drop_colour(arr: np.ndarray, path: Path, *, channels: bool) -> np.ndarray:
    """Reduce a grey/RGB/RGBA array (channels last) to one grey channel; reject real colour."""
    if not channels:
        return arr
    nch = arr.shape[-1]
    if nch in (2, 4):  # grey+alpha or RGBA: alpha must be opaque
        alpha = arr[..., -1]
        if alpha.min() != alpha.max() or alpha.flat[0] != np.iinfo(arr.dtype).max:
            raise InputError(f"{path}: image has transparent pixels (alpha channel)")
        arr = arr[..., :-1]
        nch -= 1
    if nch == 3 and not (
        np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
    ):
        raise InputError(f"{path}: colour image (R, G, B differ); expected a grey binary image")
    return arr[..., 0]


def _load_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = [p for p in tif.pages if p is not None]
            if len(tif.series) > 1 and len({(p.shape, p.dtype) for p in pages}) == 1:
                # pages written one by one (one series each): stack them along axis 0
                arr = np.stack([p.asarray() for p in pages])
                axes = "I" + pages[0].axes
            else:
                series = tif.series[0]
                arr = series.asarray()
                axes = series.axes
    except Exception as exc:  # a damaged file fails anywhere in the parser: all input errors
        raise _unreadable(path, "a TIFF image", exc) from None
    if "S" in axes and axes.endswith("S"):  # samples per pixel (RGB) last
        arr = _drop_colour(arr, path, channels=True)
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    if arr.dtype == bool:
        raise InputError(f"{path}: bilevel TIFF not supported; write 8-bit 0/255 (0 = inclusion)")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise InputError(f"{path}: image contains NaN ({int(np.isnan(arr).sum())} pixels)")
    return arr


def read_array(path: str | PathLike) -> np.ndarray:
    """The raw values of an image file: grey levels of a PNG/TIFF, the array of a ``.npy``.

    Parameters
    ----------
    path : str or path-like
        ``.npy``, ``.png`` (8- or 16-bit grey; RGB(A) with equal channels) or ``.tif``/``.tiff``
        (any numeric type; 3D as a multi-page stack, page = axis 0).

    Returns
    -------
    ndarray
        As stored (no binarisation, no shape check).

    Raises
    ------
    InputError
        Unsupported suffix, unreadable file, colour or transparency.
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image file")
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if suffix == ".npy":
        return _load_npy(path)
    return _load_png(path) if suffix == ".png" else _load_tiff(path)


def load_image(path: str | PathLike, *, dim: int | None = None) -> np.ndarray:
    """Load one binary microstructure image.

    Parameters
    ----------
    path : str or path-like
        ``.npy`` (bool or 0/1, 1 = inclusion), ``.png`` (8-bit, 0 = inclusion, 255 = matrix)
        or ``.tif``/``.tiff`` (same grey levels; 3D as a multi-page stack, page = axis 0).
    dim : {2, 3}, optional
        Required dimension.

    Returns
    -------
    ndarray, shape (n_1, ..., n_d), bool
        True = inclusion.

    Raises
    ------
    InputError
        Unsupported suffix, unreadable file, non-binary values (the values found are named),
        NaN, colour or wrong dimension.  (Greyscale micrographs: :mod:`micro.segmentation`.)
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image file")
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if suffix == ".npy":
        arr = _load_npy(path)
        try:
            return as_binary_image(arr, dim=dim)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    arr = _load_png(path) if suffix == ".png" else _load_tiff(path)
    try:
        check_image_shape(arr.shape, dim=dim)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return np.ascontiguousarray(_grey_to_binary(arr, path))


def load_images(paths: Iterable[str | PathLike], *, dim: int | None = None) -> list[np.ndarray]:
    """Load several images with :func:`load_image`; returns a list of bool arrays."""
    return [load_image(p, dim=dim) for p in paths]


def save_image(path: str | PathLike, image: np.ndarray) -> Path:
    """Write a binary image; the format follows the suffix.

    Parameters
    ----------
    path : str or path-like
        ``.npy`` (bool), ``.png`` (2D only, 8-bit 0 = inclusion / 255 = matrix) or
        ``.tif``/``.tiff`` (8-bit, same grey levels; 3D as a multi-page stack).  Missing
        parent directories are created.
    image : ndarray, shape (n,)*d, bool or 0/1
        True/1 = inclusion.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    suffix = _suffix(path)
    img = as_binary_image(image)
    if suffix == ".png" and img.ndim != 2:
        raise InputError(f"PNG holds 2D images only: got shape {img.shape}; use .tif for 3D")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # a temporary file beside it, renamed: never a half-written image at ``path``
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, img)
        else:
            grey = np.where(img, _INCLUSION_GREY, _MATRIX_GREY).astype(np.uint8)
            if suffix == ".png":
                from PIL import Image

                Image.fromarray(grey, mode="L").save(tmp, format="PNG")
            else:
                import tifffile

                tifffile.imwrite(tmp, grey, photometric="minisblack")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.debug("wrote %s (%s)", path, img.shape)
    return path
