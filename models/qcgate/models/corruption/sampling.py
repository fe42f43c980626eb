"""Corruptions of what k-space is sampled: low-pass filter, undersampling, truncation, small FOV.

Each function takes the complex working stack (S, PE, RO), a severity in (0, 1] and a generator,
and returns the corrupted complex stack and the parameters it applied. Random sampling masks
are drawn as one priority per sample, fixed before the severity is looked at, and a sample is
dropped when its priority falls under a severity-dependent threshold: the samples dropped at one
severity are also dropped at every higher one, so the artifact grows monotonically. (The regular
1D pattern is re-spaced at each severity instead; it drops more lines as severity grows.) Masks
are shared by all slices of a stack, as one protocol's sampling pattern is.
"""

from __future__ import annotations

import numpy as np

from qcgate.models.corruption.kspace import PE, RO, foreground, frequencies, to_image, to_kspace
from qcgate.models.corruption.record import Parameters

__all__ = ["blur", "gibbs", "undersampling_1d", "undersampling_2d", "wrap_around"]

_BLUR_SIGMA_PX = 3.0  # image-domain Gaussian sigma at severity 1 (FWHM about 7 pixels)
# Fully sampled centre (fraction of each axis) shrinks from 40% to 20% with severity, the paper's range.
_CENTRE_AT_ZERO, _CENTRE_AT_FULL = 0.4, 0.2
_DROP_1D = 0.9  # share of outer phase-encode lines dropped at severity 1 (about 3.6x acceleration)
_DROP_2D = 1.4  # 2D drop probability slope with normalised radius; capped at _DROP_2D_CAP
_DROP_2D_CAP = 0.95
_GIBBS_KEPT_AT_FULL = 0.25  # share of each truncated axis kept at severity 1
_WRAP_FOV_AT_FULL = 0.6  # field of view along PE, as a share of the object's, at severity 1


def blur(image: np.ndarray, severity: float, rng: np.random.Generator) -> tuple[np.ndarray, Parameters]:
    """Gaussian low-pass in k-space, exp(-2 pi^2 sigma^2 f^2), image sigma = severity * 3 px.

    It is the reconstruction filter (apodisation) a scanner applies, isotropic in pixels over
    both in-plane axes. Deterministic: ``rng`` is unused, accepted for the common signature.
    """
    sigma = severity * _BLUR_SIGMA_PX
    f_pe = frequencies(image.shape[PE]) / image.shape[PE]  # cycles per pixel
    f_ro = frequencies(image.shape[RO]) / image.shape[RO]
    gain = np.exp(-2.0 * (np.pi * sigma) ** 2 * (f_pe[:, None] ** 2 + f_ro[None, :] ** 2))  # (PE, RO)
    return to_image(to_kspace(image) * gain), {
        "sigma_px": float(sigma),
        "fwhm_px": float(sigma * 2.0 * np.sqrt(2.0 * np.log(2.0))),
    }


def undersampling_1d(
    image: np.ndarray, severity: float, rng: np.random.Generator
) -> tuple[np.ndarray, Parameters]:
    """Drop outer phase-encode lines, keep a fully sampled centre, reconstruct by zero filling.

    The central band spans 40% of the lines at severity 0 down to 20% at 1 (the paper's 20-40%).
    Half the seeds drop outer lines at random (incoherent, noise-like aliasing), half keep them
    at a regular spacing (coherent copies of the object along PE, as in parallel imaging without
    unfolding); in both, the share of outer lines dropped is about 0.9 * severity.
    """
    pattern = str(rng.choice(("random", "regular")))
    priority = rng.random(image.shape[PE])  # drawn for both patterns, so the stream does not depend on it
    centre = _centre_fraction(severity)
    line = np.abs(frequencies(image.shape[PE])) / (image.shape[PE] / 2)  # 0 at DC, 1 at the edge
    outer = line >= centre
    if pattern == "random":
        dropped = outer & (priority < _DROP_1D * severity)
    else:
        candidates = np.flatnonzero(outer)
        keep_count = round(candidates.size * (1.0 - _DROP_1D * severity))
        kept = candidates[np.rint(np.linspace(0, candidates.size - 1, keep_count)).astype(int)]
        dropped = outer.copy()
        dropped[kept] = False
    kspace = np.where(dropped[:, None], 0.0, to_kspace(image))
    return to_image(kspace), {
        "pattern": pattern,
        "centre_fraction": float(centre),
        "lines_dropped": int(dropped.sum()),
        "acceleration": float(dropped.size / (dropped.size - dropped.sum())),
    }


def undersampling_2d(
    image: np.ndarray, severity: float, rng: np.random.Generator
) -> tuple[np.ndarray, Parameters]:
    """Drop k-space samples at random with variable density outside a central square, zero filled.

    The drop probability grows with the normalised radius rho (1 at the middle of an edge),
    min(0.95, 1.4 * severity * rho / sqrt(2)), so the periphery is sampled sparsely and the
    centre densely, like a variable-density Poisson-disc pattern; the fully sampled central
    square spans 40% of each axis at severity 0 down to 20% at 1, as in the paper.
    """
    n_pe, n_ro = image.shape[PE], image.shape[RO]
    priority = rng.random((n_pe, n_ro))
    u = np.abs(frequencies(n_pe))[:, None] / (n_pe / 2)  # (PE, 1)
    v = np.abs(frequencies(n_ro))[None, :] / (n_ro / 2)  # (1, RO)
    centre = _centre_fraction(severity)
    outside = (u >= centre) | (v >= centre)
    probability = np.minimum(_DROP_2D_CAP, _DROP_2D * severity * np.hypot(u, v) / np.sqrt(2.0))
    dropped = outside & (priority < probability)  # (PE, RO)
    kspace = np.where(dropped, 0.0, to_kspace(image))
    return to_image(kspace), {
        "centre_fraction": float(centre),
        "fraction_dropped": float(dropped.mean()),
        "acceleration": float(1.0 / (1.0 - dropped.mean())),
    }


def gibbs(image: np.ndarray, severity: float, rng: np.random.Generator) -> tuple[np.ndarray, Parameters]:
    """Truncate k-space with a sharp cutoff, keeping 100% down to 25% of each truncated axis.

    A small acquisition matrix zero-filled to the displayed one: the missing high frequencies
    leave ringing parallel to every edge (Gibbs). Half the seeds truncate phase encoding only
    (the usual rectangular matrix), half both axes.
    """
    axes = str(rng.choice(("phase", "both")))
    kept = 1.0 - (1.0 - _GIBBS_KEPT_AT_FULL) * severity
    keep = np.abs(frequencies(image.shape[PE]))[:, None] <= kept * image.shape[PE] / 2  # (PE, 1)
    if axes == "both":
        keep = keep & (np.abs(frequencies(image.shape[RO]))[None, :] <= kept * image.shape[RO] / 2)
    kspace = np.where(keep, to_kspace(image), 0.0)
    return to_image(kspace), {"axes": axes, "kept_fraction": float(kept)}


def wrap_around(
    image: np.ndarray, severity: float, rng: np.random.Generator
) -> tuple[np.ndarray, Parameters]:
    """A phase-encode field of view of P rows, smaller than the object: its ends fold over.

    Sampling k-space more coarsely along PE makes the image P-periodic: every row is the complex
    sum of the object's rows P, 2P, ... apart. P runs from the object's extent along PE (its
    :func:`foreground` rows, or all N rows for an object filling the image) at severity 0 down to
    60% of it at 1, so any severity folds something. The field of view is centred on the object,
    as an operator would place it, and shown at the original pixel size inside the original N
    rows, so it lines up with the reference; rows outside it were never imaged and stay black.
    Read-out is oversampled on every scanner, so it never wraps. Deterministic: ``rng`` is unused.
    """
    n = image.shape[PE]
    rows = np.flatnonzero(foreground(np.abs(image)).any(axis=(0, 2)))  # (S, PE, RO) -> PE
    first, extent = (int(rows[0]), int(rows[-1] - rows[0] + 1)) if rows.size else (0, n)
    period = max(1, round(extent * (1.0 - (1.0 - _WRAP_FOV_AT_FULL) * severity)))
    start = first + (extent - period) // 2
    folded = np.zeros_like(image)
    for shift in range(-(start // period) - 1, (n - start) // period + 2):  # every copy that can land
        offset = shift * period  # the object's row i + offset appears at row i
        low, high = max(start, -offset), min(start + period, n - offset)
        if low < high:
            folded[..., low:high, :] += image[..., low + offset : high + offset, :]
    return folded, {
        "fov_fraction": period / n,
        "fov_rows": period,
        "fov_first_row": start,
        "object_rows": extent,
    }


def _centre_fraction(severity: float) -> float:
    """Share of each axis around DC that undersampling keeps fully sampled at this severity."""
    return _CENTRE_AT_ZERO - (_CENTRE_AT_ZERO - _CENTRE_AT_FULL) * severity
