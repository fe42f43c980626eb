"""Bring an interpolated stack back to the grid its scanner acquired, before the verdict reads it.

Scanners commonly show an image on a finer grid than they sampled (zero-filled interpolation: a
256 x 134 acquisition shown at 484 x 484). Such an image has nothing beyond the acquired part of
its spectrum, and in the pixels it is alike to a blurred one: no feature can tell the two apart,
and the verdict read the real abdomen of the evaluation images (acquired at 53 % and 37 % of its
displayed k-space) as blurred. Where the header says what was acquired
(``qcgate.imaging.acquisition``), cropping the spectrum to that share undoes zero-filled
interpolation, so sharpness is judged against what the acquisition promised: blur added inside the
acquisition still removes energy from the band that is kept, and is still found.

Magnitude images are not quite band-limited (the magnitude of a band-limited complex image is
not), so the crop rings a little where the image steps to exact zeros (zero-filled air, a
skull-stripped brain, zero padding). Pixels whose whole footprint on the displayed grid was the
fill value keep it, and a non-negative stack stays non-negative: the verdict's air and border
measures still see zero-filled air as such.

numpy and scipy only; part of the torch-free contract.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["FULL_SHARE", "MIN_SAMPLES", "acquired_grid", "acquired_shape"]

FULL_SHARE = 0.9  # an axis acquired at this share of its displayed k-space or more is left as it is
MIN_SAMPLES = 48  # never resample an axis below the smallest matrix the verdict was trained on


def acquired_shape(shape: tuple[int, int], share: tuple[float, float]) -> tuple[int, int]:
    """The (rows, columns) of a ``shape`` frame resampled to the acquired ``share`` of each axis."""

    def kept(n: int, fraction: float) -> int:
        if fraction >= FULL_SHARE:
            return n
        return min(n, max(MIN_SAMPLES, int(round(n * fraction))))

    return kept(shape[0], share[0]), kept(shape[1], share[1])


def _fill_value(image: np.ndarray) -> float:
    """The value of a constant outer ring (zero padding, or any constant), else 0."""
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return float(ring[0]) if np.all(ring == ring[0]) else 0.0


def _crop_spectrum(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (R, C) with its centred spectrum cut to ``shape``, at the same mean intensity."""
    rows, cols = image.shape
    spectrum = np.fft.fftshift(np.fft.fft2(image))
    top, left = rows // 2 - shape[0] // 2, cols // 2 - shape[1] // 2
    block = spectrum[top : top + shape[0], left : left + shape[1]]
    scale = shape[0] * shape[1] / (rows * cols)
    return np.fft.ifft2(np.fft.ifftshift(block)).real * scale


def _filled(image: np.ndarray, fill: float, shape: tuple[int, int]) -> np.ndarray:
    """(rows, columns) mask on the ``shape`` grid of pixels whose footprint on ``image`` is all ``fill``."""
    rows, cols = image.shape
    footprint = (math.ceil(rows / shape[0]) + 1, math.ceil(cols / shape[1]) + 1)
    holds = ndimage.maximum_filter(image != fill, size=footprint, mode="nearest")
    at_rows = np.minimum(((np.arange(shape[0]) + 0.5) * rows / shape[0]).astype(int), rows - 1)
    at_cols = np.minimum(((np.arange(shape[1]) + 0.5) * cols / shape[1]).astype(int), cols - 1)
    return ~holds[np.ix_(at_rows, at_cols)]


def acquired_grid(stack: np.ndarray, share: tuple[float, float] | None) -> np.ndarray:
    """A 2D ``(R, C)`` or 3D ``(S, R, C)`` magnitude ``stack`` resampled in-plane to the acquired
    ``share`` of its k-space per axis (rows' axis, columns' axis); the stack itself where ``share``
    is None or leaves both axes as they are (:data:`FULL_SHARE`)."""
    if share is None:
        return stack
    volume = np.asarray(stack)
    planes = volume[None] if volume.ndim == 2 else volume
    shape = acquired_shape(planes.shape[1:], share)
    if shape == planes.shape[1:]:
        return stack
    resampled = np.empty((planes.shape[0], *shape), dtype=np.float32)
    for index, plane in enumerate(planes.astype(np.float64)):
        fill = _fill_value(plane)
        image = _crop_spectrum(plane, shape)
        if plane.min() >= 0:
            np.maximum(image, 0.0, out=image)
        if np.any(plane == fill):
            image[_filled(plane, fill, shape)] = fill
        resampled[index] = image
    return resampled[0] if volume.ndim == 2 else resampled
