"""Synthetic head MR volumes and the small degradations the demo applies to them.

``qcgate demo``, the tests and the benchmarks need an image that looks like a T1-weighted head
(so segmentation-based metrics have tissue classes to find) without shipping patient data or
pulling in a neuroimaging stack at runtime. The phantom is drawn in normalised voxel coordinates
(each axis spans -1..1), so it fills any shape; axis 2 is the left-right symmetry axis.

:mod:`qcgate.synthetic.dicom_series` writes these volumes as DICOM series.
"""

from __future__ import annotations

import numpy as np

__all__ = ["add_rician_noise", "blur", "phantom_volume"]

# T1-weighted contrast, relative to white matter at 1.0 (fat bright, bone and CSF dark).
_SCALP, _SKULL, _CSF, _GREY, _WHITE = 0.95, 0.08, 0.2, 0.6, 1.0

# Shell radii of the nested head ellipsoids (1.0 is the skin surface).
_SKULL_R, _CSF_R, _BRAIN_R, _WHITE_R = 0.93, 0.87, 0.84, 0.74

_HEAD_SEMI_AXES = (0.82, 0.88, 0.76)  # (S, R, C) in normalised coordinates
_VENTRICLE_SEMI_AXES = (0.28, 0.38, 0.07)
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def phantom_volume(shape: tuple[int, int, int] = (176, 256, 256), seed: int = 0) -> np.ndarray:
    """A T1-like head phantom, float32 (S, R, C), white matter near 1.0 and air exactly 0.

    Nested ellipsoids give scalp, skull, CSF, a cortical grey-matter ribbon whose inner border
    folds (smooth random field) and white matter; two lateral ventricles hold CSF. A smooth bias
    field and a mild multiplicative texture make it less ideal, so noise and blur metrics do not
    see a piecewise-constant image. Everything random comes from ``seed``, so a seed is a phantom.
    """
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f'Argument "shape" must be three axis lengths of at least 8, got {shape}.')
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    z, y, x = np.ix_(*axes)  # (S,1,1), (1,R,1), (1,1,C)
    edge = min(2.0 / min(shape), _CSF_R - _BRAIN_R)  # about a voxel, so borders are partial-volumed
    az, ay, ax = _HEAD_SEMI_AXES
    r = np.sqrt((z / az) ** 2 + (y / ay) ** 2 + (x / ax) ** 2)  # (S, R, C)

    folds = _smooth_noise(shape, 24, rng)
    image = _radial_profile(r, edge)
    fold_depth = 0.07 * np.maximum(folds, -1.0)  # floored, so grey matter always covers white
    _paint(image, _inside(r + fold_depth, _WHITE_R, edge), _WHITE)
    for side in (-1.0, 1.0):
        _paint_ventricle(image, axes, side, edge)

    bias = np.exp(0.12 * _smooth_noise(shape, 3, rng))
    texture = 1.0 + 0.03 * _smooth_noise(shape, 40, rng)
    image *= bias * texture
    return image


def add_rician_noise(volume: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Magnitude of the volume plus complex Gaussian noise of standard deviation ``sigma`` per channel.

    This is the noise a magnitude MR image really carries: Rician in tissue and Rayleigh in air,
    where the mean is ``sigma*sqrt(pi/2)`` and the standard deviation ``sigma*sqrt((4-pi)/2)``.
    Noise metrics that estimate sigma from the background are checked against exactly that.
    """
    if sigma < 0:
        raise ValueError(f'Argument "sigma" must be non-negative, got {sigma}.')
    rng = np.random.default_rng(seed)
    real = volume + rng.normal(0.0, sigma, volume.shape)
    imaginary = rng.normal(0.0, sigma, volume.shape)
    return np.hypot(real, imaginary).astype(np.float32)


def blur(volume: np.ndarray, fwhm_px: float, axes: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """Gaussian low-pass of full width at half maximum ``fwhm_px`` pixels, applied in k-space.

    Multiplying k-space by a Gaussian is what a scanner's apodisation filter or a reduced
    acquisition window does, so the default blurs in-plane only (rows and columns), as a 2D
    acquisition would. Filtering by FFT wraps around the edges, harmless for a head in air.
    """
    if fwhm_px < 0:
        raise ValueError(f'Argument "fwhm_px" must be non-negative, got {fwhm_px}.')
    sigma = fwhm_px * _FWHM_TO_SIGMA
    spectrum = np.fft.rfftn(volume, axes=axes)
    for position, axis in enumerate(axes):
        last = position == len(axes) - 1  # rfftn halves the last transformed axis
        n = volume.shape[axis]
        freq = np.fft.rfftfreq(n) if last else np.fft.fftfreq(n)  # cycles per pixel
        gain = np.exp(-2.0 * (np.pi * sigma * freq) ** 2)
        spectrum *= gain.reshape([-1 if a == axis else 1 for a in range(volume.ndim)])
    out = np.fft.irfftn(spectrum, s=[volume.shape[a] for a in axes], axes=axes)
    return out.astype(np.float32)


def _radial_profile(r: np.ndarray, edge: float) -> np.ndarray:
    """Intensity of the nested shells (grey matter, CSF, skull, scalp, air) as a function of ``r``.

    One interpolation over a piecewise-linear profile paints every shell with soft borders in a
    single pass over the volume.
    """
    shells = ((_BRAIN_R, _CSF), (_CSF_R, _SKULL), (_SKULL_R, _SCALP), (1.0, 0.0))  # (radius, outside)
    knots, values = [0.0], [_GREY]
    for radius, outside in shells:
        knots += [radius - edge / 2, radius + edge / 2]
        values += [values[-1], outside]
    return np.interp(r, knots, values).astype(np.float32)


def _paint_ventricle(image: np.ndarray, axes: list[np.ndarray], side: float, edge: float) -> None:
    """Fill one lateral ventricle (``side`` -1 or +1 along the columns) with CSF, in place.

    Only the ventricle's bounding box is touched, since it is a small fraction of the volume.
    """
    centre = (0.1, -0.05, side * 0.11)
    box, local = [], []
    for axis, (coords, middle, semi) in enumerate(zip(axes, centre, _VENTRICLE_SEMI_AXES, strict=True)):
        keep = np.flatnonzero(np.abs(coords - middle) <= semi + edge)
        if keep.size == 0:  # so coarse a grid that the ventricle falls between samples
            return
        box.append(slice(keep[0], keep[-1] + 1))
        local.append(((coords[box[-1]] - middle) / semi).reshape([-1 if a == axis else 1 for a in range(3)]))
    rho = np.sqrt(local[0] ** 2 + local[1] ** 2 + local[2] ** 2)
    _paint(image[tuple(box)], _inside(rho, 1.0, edge / min(_VENTRICLE_SEMI_AXES)), _CSF)


def _inside(radius: np.ndarray, boundary: float, edge: float) -> np.ndarray:
    """Soft membership (0..1) of ``radius < boundary`` with a ramp ``edge`` wide, for partial volume."""
    return np.clip((boundary - radius) / edge + 0.5, 0.0, 1.0)


def _paint(image: np.ndarray, alpha: np.ndarray, value: float) -> None:
    """Lay a tissue of intensity ``value`` over ``image`` where ``alpha`` says, in place."""
    image += alpha * (value - image)


def _smooth_noise(shape: tuple[int, int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """A zero-mean, unit-variance random field with about ``cells`` blobs along each axis.

    Gaussian-interpolating a coarse random grid axis by axis costs three small matrix products,
    far cheaper than filtering full-resolution noise, which keeps the phantom well under a second.
    """
    field = rng.standard_normal((cells, cells, cells)).astype(np.float32)
    for axis, n in enumerate(shape):
        centres = np.linspace(0.0, 1.0, cells)
        weights = np.exp(-0.5 * ((np.linspace(0.0, 1.0, n)[:, None] - centres) * (cells - 1)) ** 2)
        weights /= weights.sum(axis=1, keepdims=True)  # (n, cells)
        field = np.moveaxis(np.tensordot(weights.astype(np.float32), field, axes=([1], [axis])), 0, axis)
    sample = field[::4, ::4, ::4]  # the field is smooth, so a subsample gives its moments cheaply
    return (field - sample.mean()) / sample.std()
