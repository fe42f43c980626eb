"""The input contract every learned metric shares between training, export parity and serving.

Numpy only, so the service imports it without torch and training imports the very same code: a
model trained on inputs normalised one way and served inputs normalised another would score
garbage without any error.

* **Normalisation** (``NORMALISATIONS``): intensities are divided by the 99th percentile of the
  foreground, the foreground being the voxels above the mean intensity of the region (in MR most of
  the field of view is dark air, so the mean falls between air and tissue: a cheap, deterministic
  stand-in for Otsu's threshold). ``stack_foreground_p99`` takes one scale per stack (relative
  brightness of slices is kept, so an edge slice with little signal stays dark);
  ``slice_foreground_p99`` one per slice (for models trained on isolated slices).
* **Constant border** (:func:`content_box`): rows and columns at the edges of a stack that hold one
  value in every slice (zero padding, or air a scanner zero-filled out to the matrix) are storage,
  not image, and are cut off before anything else. Without the cut a slice padded with zero air is
  scored on different windows, with more empty air in them, than the same slice unpadded: the
  verdict, which reads these scores, moved by up to 6 points under padding on the real evaluation
  images. Scanner images with noisy air have no constant border, so they are scored as before.
* **Foreground of a window**: voxels of the normalised input above ``FOREGROUND_LEVEL``. Windows
  (2D tiles, 3D patches) with less than ``MIN_FOREGROUND_FRACTION`` foreground are not scored: an
  all-air window says nothing about the image the metric was trained to judge.
* **Windows** (:func:`window_starts`): native resolution, never resized (resizing erases blur and
  undersampling artefacts). Along each axis a window of length ``window`` steps by ``stride`` and the
  last one is aligned with the end, so every voxel is covered. An in-plane axis shorter than the
  window is zero-padded at its end (zero is air after normalisation). A stack thinner than a 3D
  patch is repeated cyclically along the slice axis instead (:func:`patch_padded`): zero slices
  behind a thin slab are not air but absent data, and a 3D network trained on slabs padded that way
  learned nothing (HyS-net's loss stayed at the mean label's; docs/training.md).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

InputKind = Literal["slice2d", "patch3d"]  # a whole slice (tiled if large) or a 3D patch
Normalisation = Literal["stack_foreground_p99", "slice_foreground_p99"]
NORMALISATIONS: tuple[Normalisation, ...] = ("stack_foreground_p99", "slice_foreground_p99")
FOREGROUND_LEVEL = 0.1  # of the normalisation scale
MIN_FOREGROUND_FRACTION = 0.01  # of a window's voxels
_SCALE_PERCENTILE = 99.0
_MAX_SAMPLES = 2_000_000  # the percentile is read off at most this many (strided) voxels


def foreground_scale(region: np.ndarray) -> float:
    """The 99th percentile of the voxels above the region's mean; nan for a constant region."""
    values = region.reshape(-1)
    if values.size > _MAX_SAMPLES:
        values = values[:: values.size // _MAX_SAMPLES + 1]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    foreground = values[values > values.mean()]
    if foreground.size == 0:
        return float("nan")
    scale = float(np.percentile(foreground, _SCALE_PERCENTILE))
    return scale if scale > 0 else float("nan")


def content_box(image: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and columns of ``image`` (R, C), or of a stack (S, R, C), inside its constant border.

    The border is every edge row and column whose voxels all hold the array's minimum, in every
    slice of a stack (so all slices keep one grid). ``None`` when no voxel differs from the minimum.
    Non-finite voxels count as zero.
    """
    values = np.asarray(image)
    if not np.isfinite(values).all():
        values = np.nan_to_num(values)
    varying = values != values.min()
    if varying.ndim == 3:
        varying = varying.any(axis=0)
    rows, cols = np.flatnonzero(varying.any(axis=1)), np.flatnonzero(varying.any(axis=0))
    if rows.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def without_constant_border(volume: np.ndarray) -> np.ndarray:
    """``volume`` (S, R, C) cut to its :func:`content_box` (a view); raises ValueError when blank."""
    box = content_box(volume)
    if box is None:
        raise ValueError("no voxel differs from the rest: a blank or constant stack")
    return volume[:, box[0], box[1]]


def normalise(volume: np.ndarray, method: Normalisation) -> np.ndarray:
    """``volume`` (S, R, C) divided by its foreground scale, float32.

    Raises ValueError naming the method when a scale is undefined (a blank stack, or a blank slice
    under ``slice_foreground_p99``), so the caller can report the stack as not assessable.
    """
    if method == "stack_foreground_p99":
        scales = np.full(volume.shape[0], foreground_scale(volume))
    elif method == "slice_foreground_p99":
        scales = np.array([foreground_scale(image) for image in volume])
    else:
        raise ValueError(f'Unknown normalisation "{method}"; expected one of {", ".join(NORMALISATIONS)}')
    if not np.all(np.isfinite(scales)):
        raise ValueError(f"{method}: no foreground to normalise by (a blank or constant image)")
    return (volume / scales[:, None, None].astype(np.float32)).astype(np.float32)


def foreground_fraction(window: np.ndarray) -> float:
    """Share of a normalised window's voxels above ``FOREGROUND_LEVEL``."""
    return float(np.count_nonzero(window > FOREGROUND_LEVEL)) / max(window.size, 1)


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows covering ``length`` voxels, the last aligned with the end.

    ``[0]`` when the axis is no longer than the window (the caller pads it).
    """
    if window < 1 or stride < 1:
        raise ValueError('Arguments "window" and "stride" must be at least 1.')
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def slice_windows(
    padded: np.ndarray, tile: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[tuple[int, int], list[tuple[int, int, int]]]:
    """The 2D window size and the ``(slice, row, col)`` starts of the windows worth scoring.

    ``padded`` is a normalised (S, R, C) stack from :func:`slices_padded`; a window is scored when
    at least ``MIN_FOREGROUND_FRACTION`` of it is foreground. The service and the verdict's training
    both cut slices here, so a slice is scored the same way wherever it is scored.
    """
    size = (min(tile[0], padded.shape[1]), min(tile[1], padded.shape[2]))
    starts = [window_starts(n, w, s) for n, w, s in zip(padded.shape[1:], size, stride, strict=True)]
    mask = padded > FOREGROUND_LEVEL
    windows: list[tuple[int, int, int]] = []
    for row in starts[0]:
        for col in starts[1]:
            fraction = mask[:, row : row + size[0], col : col + size[1]].mean(axis=(1, 2))  # (S,)
            windows += [(int(s), row, col) for s in np.flatnonzero(fraction >= MIN_FOREGROUND_FRACTION)]
    return size, windows


def slices_padded(volume: np.ndarray, tile: tuple[int, ...], multiple: int) -> np.ndarray:
    """``volume`` (S, R, C) with rows and columns zero-padded for 2D windows of ``tile`` (R, C)."""
    rows, cols = (
        padded_length(n, t, multiple, pad_to_window=False)
        for n, t in zip(volume.shape[1:], tile, strict=True)
    )
    return _zero_padded(volume, (volume.shape[0], rows, cols))


def patch_padded(volume: np.ndarray, tile: tuple[int, ...]) -> np.ndarray:
    """``volume`` (S, R, C) grown to ``tile``: slices repeated cyclically, rows and columns zeroed."""
    if volume.shape[0] < tile[0]:
        volume = volume[np.arange(tile[0]) % volume.shape[0]]
    rows, cols = (
        padded_length(n, t, 1, pad_to_window=True) for n, t in zip(volume.shape[1:], tile[1:], strict=True)
    )
    return _zero_padded(volume, (volume.shape[0], rows, cols))


def _zero_padded(volume: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``volume`` in the corner of a float32 array of zeros of ``shape`` (itself when it has that shape)."""
    if volume.shape == shape:
        return volume
    padded = np.zeros(shape, dtype=np.float32)
    padded[tuple(slice(0, n) for n in volume.shape)] = volume
    return padded


def padded_length(length: int, window: int, multiple: int, *, pad_to_window: bool) -> int:
    """The length an axis is zero-padded to before windows are cut.

    Longer than the window: unchanged (windows lie inside). Otherwise the window itself when
    ``pad_to_window`` (3D patches have a fixed size), else the next multiple of ``multiple``
    (2D slices are scored whole at native size).
    """
    if length > window:
        return length
    if pad_to_window:
        return window
    return -(-length // multiple) * multiple
