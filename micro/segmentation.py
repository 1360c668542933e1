"""Phase images from micrographs: greyscale thresholding (Otsu, multi-Otsu) and label images.

A *phase image* is a uint8 array of labels ``0 .. k-1``, one permeability per label.  Binary
images keep the project's convention (label 1 = True = inclusion); for greyscale images the
labels follow the paper's 8-bit convention, extended to k phases: **the brightest class is
label 0 (matrix) and the darkest is label k-1** (for k = 2, 0 = inclusion grey level gives label
1), and ``invert=True`` reverses the order.  Thresholds come from scikit-image (Otsu's method for
two phases, multi-level Otsu for more, on 256 bins, each threshold then put at the midpoint of
the means of its two classes) unless given; a pixel whose grey level is above threshold ``t_m``
belongs to a class brighter than ``m``.

:func:`load_phases` reads any supported file (:func:`micro.imageio.read_array`): ``.npy`` bool /
0-1 / integer label arrays are taken as they are, PNG/TIFF files with exactly the grey levels
{0, 255} as the paper's binary images, and everything else (8- or 16-bit greyscale, float
arrays) is segmented.  :func:`save_preview` draws the phase boundaries on the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from magnetohom.errors import InputError
from micro.validate import as_label_image, check_image_shape, format_values

__all__ = ["Segmentation", "load_phases", "save_preview", "segment"]


@dataclass(frozen=True)
class Segmentation:
    """A phase image and how it was obtained.

    Attributes
    ----------
    labels : ndarray, shape (n_1, ..., n_d), uint8
        Phase label per pixel, ``0 .. n_phases-1``.
    n_phases : int
        Number of phases k.
    thresholds : ndarray, shape (k-1,), float64
        Grey-level thresholds, increasing (empty when the input was already a phase image).
    method : str
        ``"labels"`` (input was a phase/binary image), ``"otsu"``, ``"multi-otsu"`` or
        ``"threshold"`` (given by the caller).
    grey : ndarray
        The image as read (grey levels or labels), for previews.
    """

    labels: np.ndarray
    n_phases: int
    thresholds: np.ndarray
    method: str
    grey: np.ndarray

    @property
    def volume_fractions(self) -> np.ndarray:
        """Pixel fraction of every phase, shape (k,), float64 (sums to 1)."""
        counts = np.bincount(self.labels.ravel(), minlength=self.n_phases)
        return counts / self.labels.size

    @property
    def dim(self) -> int:
        return self.labels.ndim


def _check_grey(grey: object, dim: int | None) -> np.ndarray:
    try:
        arr = np.asarray(grey)
    except (TypeError, ValueError) as exc:
        raise InputError(f"image is not a numeric array: {exc}") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"image must be a real numeric array: got dtype {arr.dtype}")
    check_image_shape(arr.shape, dim=dim)
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise InputError(f"image contains NaN or inf ({int((~np.isfinite(arr)).sum())} pixels)")
    return arr


def segment(
    grey: np.ndarray,
    *,
    n_phases: int = 2,
    threshold: float | list[float] | None = None,
    invert: bool = False,
    dim: int | None = None,
) -> Segmentation:
    """Segment a greyscale image into ``n_phases`` phases by grey-level thresholds.

    Parameters
    ----------
    grey : ndarray, shape (n_1, n_2) or (n_1, n_2, n_3), numeric
        Grey levels (any range: 8-bit, 16-bit, float).
    n_phases : int
        Number of phases k >= 2.
    threshold : float or sequence of k-1 floats, optional
        Thresholds in grey levels; default Otsu's (k = 2) or multi-level Otsu's (k > 2), from
        scikit-image.  Each must lie in ``[min, max)`` of the image.
    invert : bool
        Darkest class = label 0 instead of the brightest.
    dim : {2, 3}, optional
        Required dimension.

    Returns
    -------
    Segmentation

    Raises
    ------
    InputError
        An empty or constant image, fewer distinct grey levels than phases, a threshold outside
        the image's range or not increasing, the wrong number of thresholds, or a phase left
        without pixels.
    """
    arr = _check_grey(grey, dim)
    k = int(n_phases)
    if k < 2 or k > 255:
        raise InputError(f"number of phases must be in 2..255: got {n_phases!r}")
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InputError(f"image is constant (every pixel {lo:g}): nothing to segment")
    levels = np.unique(arr)
    if levels.size < k:
        raise InputError(
            f"image has {levels.size} distinct grey levels {format_values(levels)}, fewer than "
            f"the {k} phases asked for"
        )
    if threshold is None:
        from skimage.filters import threshold_multiotsu, threshold_otsu

        if k == 2:
            t = np.array([threshold_otsu(arr)], dtype=np.float64)
            method = "otsu"
        else:
            # 256 bins over the range (an integer image would get one bin per grey level, and
            # multi-Otsu's cost grows like bins^(k-1): minutes for a 16-bit image)
            src = arr.astype(np.float64) if hi - lo > 255 else arr
            t = np.asarray(threshold_multiotsu(src, classes=k, nbins=256), dtype=np.float64)
            method = "multi-otsu"
        t = _refine(arr, t)
    else:
        t = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
        method = "threshold"
        if t.size != k - 1:
            raise InputError(f"{k} phases need {k - 1} threshold(s): got {t.size}")
        bad = t[(t < lo) | (t >= hi) | ~np.isfinite(t)]
        if bad.size:
            raise InputError(
                f"threshold {bad[0]:g} is outside the image's grey-level range [{lo:g}, {hi:g})"
            )
        if np.any(np.diff(t) <= 0):
            raise InputError(f"thresholds must increase: got {t.tolist()}")
    cls = np.digitize(arr, t, right=True).astype(np.uint8)  # 0 = darkest class
    labels = cls if invert else (k - 1 - cls).astype(np.uint8)
    counts = np.bincount(labels.ravel(), minlength=k)
    if (counts == 0).any():
        empty = int(np.flatnonzero(counts == 0)[0])
        raise InputError(
            f"segmentation leaves phase {empty} without pixels (thresholds "
            f"{', '.join(f'{v:g}' for v in t)}; grey levels {lo:g}..{hi:g})"
        )
    return Segmentation(np.ascontiguousarray(labels), k, t, method, arr)


def _refine(values: np.ndarray, t: np.ndarray, steps: int = 1) -> np.ndarray:
    """Lloyd (1D k-means) steps from the histogram thresholds: each threshold moves to the
    midpoint of the means of the classes beside it (Otsu's optimality condition).

    Otsu's criterion is the within-class variance on a 256-bin histogram; where the histogram
    is flat (an empty stretch between classes) its argmax is the first bin of that stretch, so a
    threshold can sit inside the last bin of the darker class.  The same criterion minimised on
    the pixels themselves puts it between the classes; one step does that and otherwise moves
    a threshold by less than a bin.  Kept only if no class empties.
    """
    v = values.ravel().astype(np.float64)
    cur = t.copy()
    for _ in range(steps):
        cls = np.digitize(v, cur, right=True)
        counts = np.bincount(cls, minlength=cur.size + 1)
        if (counts == 0).any():
            return t
        means = np.bincount(cls, weights=v, minlength=cur.size + 1) / counts
        new = 0.5 * (means[:-1] + means[1:])
        if np.array_equal(np.digitize(v, new, right=True), cls):
            return new
        cur = new
    return cur


def _is_label_array(arr: np.ndarray) -> bool:
    if arr.dtype == bool:
        return True
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        return False
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            return False
    return bool(arr.size) and arr.min() >= 0 and arr.max() < 256


def load_phases(
    path: str | PathLike,
    *,
    n_phases: int = 2,
    threshold: float | list[float] | None = None,
    invert: bool = False,
    dim: int | None = None,
) -> Segmentation:
    """Read an image file as a phase image (segmenting it where it is greyscale).

    Parameters
    ----------
    path : str or path-like
        ``.npy``, ``.png`` or ``.tif``/``.tiff`` (see the module docstring for what is segmented).
    n_phases : int
        Number of phases k (one permeability each).
    threshold, invert
        As for :func:`segment`; ``invert`` also swaps the labels of phase/binary inputs
        (label ``l`` becomes ``k-1-l``); ``threshold`` forces segmentation of ``.npy`` arrays.
    dim : {2, 3}, optional
        Required dimension.

    Returns
    -------
    Segmentation

    Raises
    ------
    InputError
        As :func:`segment` and :func:`micro.validate.as_label_image` (e.g. more labels than
        phases), with the file name in front.
    FileNotFoundError
        ``path`` does not exist.
    """
    from micro.imageio import read_array

    path = Path(path)
    arr = read_array(path)
    k = int(n_phases)
    try:
        if path.suffix.lower() == ".npy" and threshold is None and _is_label_array(arr):
            labels = as_label_image(arr, n_phases=k, dim=dim)
            if invert:
                labels = (k - 1 - labels).astype(np.uint8)
            return Segmentation(labels, k, np.zeros(0), "labels", arr)
        grey = _check_grey(arr, dim)
        if k == 2 and threshold is None and np.isin(np.unique(grey), (0, 255)).all():
            labels = (grey == 0).astype(np.uint8)  # the paper's 0 = inclusion, 255 = matrix
            if invert:
                labels = 1 - labels
            return Segmentation(labels, 2, np.zeros(0), "labels", grey)
        return segment(grey, n_phases=k, threshold=threshold, invert=invert, dim=dim)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def save_preview(seg: Segmentation, path: str | PathLike) -> Path:
    """Write a PNG of the image with the phase boundaries drawn in red.

    3D images show their middle slice along axis 0.

    Parameters
    ----------
    seg : Segmentation
    path : str or path-like
        Output ``.png``; missing parent directories are created.

    Returns
    -------
    pathlib.Path
    """
    from PIL import Image
    from skimage.segmentation import mark_boundaries

    path = Path(path)
    grey = np.asarray(seg.grey, dtype=np.float64)
    labels = seg.labels
    if labels.ndim == 3:
        mid = labels.shape[0] // 2
        grey, labels = grey[mid], labels[mid]
    lo, hi = float(grey.min()), float(grey.max())
    norm = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    rgb = mark_boundaries(np.stack([norm] * 3, axis=-1), labels, color=(1.0, 0.0, 0.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8), mode="RGB").save(path)
    return path
