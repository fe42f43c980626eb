"""Smooth random fields on the output grid: shape perturbations, label fields, texture, bias, phase.

Everything random and smooth in a synthetic image comes from here. A field with a correlation length
of centimetres needs only a coarse lattice, so each field is white noise on a lattice about as fine as
its smoothing kernel, Gaussian-filtered there, then upsampled to the output grid by separable linear
interpolation (three cheap 1D passes instead of one N-D resampling). This keeps a 256 x 256 field
under a millisecond, which is what makes on-the-fly generation on two CPU cores possible.

Fields live in the output grid's frame, not the anatomy's: a stationary random field stays one after
any rotation or deformation, so there is nothing to gain by transforming it. Direction is the one
thing that survives: structures that run along a body are stretched along the grid axes that the
object's z axis lies on (``Canvas.z_alignment``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage

__all__ = ["Canvas"]

_LATTICE_PER_SIGMA = 1.5  # lattice steps per kernel sigma: enough for linear upsampling to look smooth


@dataclass(frozen=True)
class Canvas:
    """The output grid that fields are drawn on, and the random stream they are drawn from."""

    shape: tuple[int, ...]  # (R, C) or (S, R, C)
    spacing_mm: tuple[float, ...]
    rng: np.random.Generator
    z_alignment: tuple[float, ...] = ()  # per axis: |cosine| to the object's z axis; () for none

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.spacing_mm) or min(self.spacing_mm) <= 0:
            raise ValueError(
                f'Arguments "shape" {self.shape} and "spacing_mm" {self.spacing_mm} must have equal'
                " lengths and positive spacings."
            )
        if self.z_alignment and len(self.z_alignment) != len(self.shape):
            raise ValueError(f'Argument "z_alignment" must have one value per axis of {self.shape}.')

    @property
    def edge_mm(self) -> float:
        """Width of a tissue boundary: one in-plane pixel, as partial volume makes it on a scanner."""
        return min(self.spacing_mm[-2:])

    def field(self, sigma_mm: float, elongation: float = 1.0) -> np.ndarray:
        """Gaussian random field, zero mean and unit standard deviation, float32 on the grid.

        ``sigma_mm`` is the smoothing kernel's standard deviation: the field's gradient then has a
        standard deviation of about ``1 / (sqrt(2) sigma_mm)`` per millimetre along each axis.
        ``elongation`` stretches the kernel along the object's z axis, for structures that run along
        a body (muscles, septa): the stretch falls on the grid axes that z lies along.
        """
        alignment = self.z_alignment or (0.0,) * len(self.shape)
        kernel = [sigma_mm * (1.0 + (elongation - 1.0) * a * a) for a in alignment]
        steps = [
            max(spacing, sigma / _LATTICE_PER_SIGMA)
            for spacing, sigma in zip(self.spacing_mm, kernel, strict=True)
        ]
        lattice_shape = [
            math.ceil((n - 1) * spacing / step) + 2
            for n, spacing, step in zip(self.shape, self.spacing_mm, steps, strict=True)
        ]
        sigmas = [sigma / step for sigma, step in zip(kernel, steps, strict=True)]
        margins = [math.ceil(2.0 * sigma) for sigma in sigmas]  # so the field does not wrap around
        noise = self.rng.standard_normal(
            [n + 2 * m for n, m in zip(lattice_shape, margins, strict=True)], dtype=np.float32
        )
        smooth = ndimage.gaussian_filter(noise, sigmas, mode="constant", truncate=2.0)
        lattice = smooth[tuple(slice(m, m + n) for n, m in zip(lattice_shape, margins, strict=True))]
        lattice /= max(float(lattice.std()), 1e-6)
        for axis, (n, spacing, step) in enumerate(zip(self.shape, self.spacing_mm, steps, strict=True)):
            lattice = _upsample_linear(lattice, axis, n, spacing / step)
        return lattice

    def textures(self, coarsest_mm: Sequence[float], hurst: Sequence[float]) -> np.ndarray:
        """Fractal (power-law) textures, one per pair of arguments, float32 (count, *shape), unit std.

        White noise shaped in k-space by ``(k^2 + k0^2)^(-(hurst + D/2) / 2)``, with ``k0`` =
        1 / ``coarsest_mm``: fractional-Brownian texture from the pixel up to ``coarsest_mm``, rough
        for small ``hurst`` and mottled for large. One batched FFT, cheaper than octaves of fields.
        """
        ndim = len(self.shape)
        noise = self.rng.standard_normal((len(coarsest_mm), *self.shape), dtype=np.float32)
        axes = tuple(range(1, ndim + 1))
        spectrum = fft.rfftn(noise, axes=axes, workers=1)
        frequencies = [
            fft.fftfreq(n, spacing).astype(np.float32)
            for n, spacing in zip(self.shape[:-1], self.spacing_mm[:-1], strict=True)
        ]
        frequencies.append(fft.rfftfreq(self.shape[-1], self.spacing_mm[-1]).astype(np.float32))
        k2 = sum(
            f.reshape([-1 if a == i else 1 for a in range(ndim)]) ** 2 for i, f in enumerate(frequencies)
        )
        for index, (coarsest, h) in enumerate(zip(coarsest_mm, hurst, strict=True)):
            spectrum[index] *= (k2 + np.float32(coarsest**-2)) ** np.float32(-(h + ndim / 2) / 2)
        textures = fft.irfftn(spectrum, s=self.shape, axes=axes, workers=1)
        textures -= textures.mean(axis=axes, keepdims=True)
        textures /= np.maximum(textures.std(axis=axes, keepdims=True), np.float32(1e-6))
        return textures.astype(np.float32)

    def gradient_magnitude(self, field: np.ndarray) -> np.ndarray:
        """|grad field| per millimetre, float32, floored so it can divide."""
        squares = sum(g * g for g in np.gradient(field, *self.spacing_mm))
        return np.maximum(np.sqrt(squares), np.float32(1e-4)).astype(np.float32)


def _upsample_linear(lattice: np.ndarray, axis: int, n: int, step_ratio: float) -> np.ndarray:
    """Linear interpolation of ``lattice`` along ``axis`` at positions ``0, r, 2r, ... (n-1)r``."""
    positions = np.arange(n, dtype=np.float32) * np.float32(step_ratio)
    if step_ratio == 1.0:
        return np.take(lattice, np.arange(n), axis=axis)
    below = np.minimum(positions.astype(np.int64), lattice.shape[axis] - 2)
    weight = (positions - below.astype(np.float32)).reshape(
        [-1 if a == axis else 1 for a in range(lattice.ndim)]
    )
    low, high = np.take(lattice, below, axis=axis), np.take(lattice, below + 1, axis=axis)
    return low + weight * (high - low)
