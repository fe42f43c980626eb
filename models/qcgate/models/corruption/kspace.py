"""Centred k-space transforms and the few facts about an image every corruption needs.

Every corruption works on a complex stack laid out (S, PE, RO): slices, phase-encode rows,
read-out columns. Transforms are unitary (``norm="ortho"``), so white Gaussian noise of standard
deviation sigma in k-space is white noise of the same sigma in the image, and a k-space sample of
amplitude ``a`` spreads ``a / sqrt(PE * RO)`` over every pixel. Frequencies are centred: after the
shift, line ``n // 2`` is DC for even and odd ``n`` alike.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IN_PLANE", "PE", "RO", "foreground", "frequencies", "signal_level", "to_image", "to_kspace"]

PE, RO = -2, -1  # axes of the (S, PE, RO) working layout
IN_PLANE = (PE, RO)
_FOREGROUND_FRACTION = 0.1  # of the 99th percentile: above air and Rayleigh noise, below any tissue


def to_kspace(image: np.ndarray, axes: tuple[int, ...] = IN_PLANE) -> np.ndarray:
    """Centred, unitary Fourier transform over ``axes`` (default both in-plane axes).

    ``axes=(PE,)`` gives the hybrid space (k_PE, x_RO) in which echo-planar phase errors live.
    """
    shifted = np.fft.ifftshift(image, axes=axes)
    return np.fft.fftshift(np.fft.fftn(shifted, axes=axes, norm="ortho"), axes=axes)


def to_image(kspace: np.ndarray, axes: tuple[int, ...] = IN_PLANE) -> np.ndarray:
    """Inverse of :func:`to_kspace`: a zero-filled reconstruction when samples were set to zero."""
    shifted = np.fft.ifftshift(kspace, axes=axes)
    return np.fft.fftshift(np.fft.ifftn(shifted, axes=axes, norm="ortho"), axes=axes)


def frequencies(n: int) -> np.ndarray:
    """Signed k-space line numbers of a centred axis of ``n`` samples, DC at 0 (index ``n // 2``)."""
    return np.arange(n) - n // 2


def foreground(magnitude: np.ndarray) -> np.ndarray:
    """Where the object is: magnitude above a tenth of the 99th percentile (boolean, same shape).

    A percentile, not the maximum, so a few very bright pixels (fat, vessels) do not set it, and
    a tenth of it lies above air and its noise but below any tissue of interest.
    """
    return magnitude > _FOREGROUND_FRACTION * float(np.percentile(magnitude, 99))


def signal_level(magnitude: np.ndarray) -> float:
    """Mean magnitude of the :func:`foreground`: the "S" that noise and spikes are relative to.

    Taken over the object only, it describes tissue whether air fills most of the field of view
    (head) or none of it (abdomen). An all-zero image has level 0.
    """
    inside = magnitude[foreground(magnitude)]
    return float(inside.mean()) if inside.size else 0.0
