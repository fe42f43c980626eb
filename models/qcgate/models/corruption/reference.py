"""Full-reference quality measures of a corrupted image against its clean original, and labels.

Pure functions in the MRIQC manner: each docstring gives the formula, the citation and the
direction. Images are 2D (R, C) or 3D (S, R, C) magnitudes; windowed measures (SSIM, VIF) work
slice by slice in-plane, as a reader looks at a series. Intensities are judged against the
reference's range ``L = max(reference)``, the fastMRI convention, so a measure does not change when
both images are scaled together.

The perceptual measure is VIF, pixel-domain visual information fidelity (Sheikh & Bovik 2006),
from ``sewar`` (numpy/scipy, no torch): among full-reference measures it agreed best with
radiologists' scores of MR images in Mason et al. 2020 (IEEE TMI 39:1064) and was among the best
in Kastryulin et al. 2023 (IEEE Access 11:14154). See ``docs/corruptions.md``.
"""

from __future__ import annotations

import math

import numpy as np
import sewar
from scipy import ndimage

__all__ = [
    "PERCEPTUAL_NAME",
    "composite_from_measures",
    "nrmse",
    "perceptual",
    "psnr",
    "quality_label",
    "reference_measures",
    "ssim",
    "true_snr",
]

PERCEPTUAL_NAME = "vif"
_SSIM_SIGMA, _SSIM_TRUNCATE = 1.5, 3.5  # Wang et al.'s 11 x 11 Gaussian window
_SSIM_BORDER = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)  # its half-width, 5 px
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_VIF_SCALE = 255.0  # sewar's VIF models visual noise (sigma_nsq = 2) for 8-bit intensities
_VIF_MIN_SIZE = 41  # four VIF scales of valid-mode filtering need this many pixels per axis
# Composite of the measures, 0 (useless) .. 1 (identical); see composite_from_measures.
_WEIGHTS = {"nrmse": 0.4, "ssim": 0.3, PERCEPTUAL_NAME: 0.3}
_NRMSE_SCALE = 0.25  # NRMSE at which the fidelity term has fallen to 1/e


def ssim(reference: np.ndarray, image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity (Wang et al. 2004, IEEE TIP 13:600), mean over ``mask`` or all pixels.

    SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)) in an
    11 x 11 Gaussian window (sigma 1.5 px) per slice, C1 = (0.01 L)^2, C2 = (0.03 L)^2. The
    5-pixel border where the window leaves the image is left out of the mean, so the value is
    scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``.
    Range -1..1; higher is better, 1 for identical images.
    """
    x, y, weights = _prepare(reference, image, mask)
    c1, c2 = (_SSIM_K1 * _data_range(x)) ** 2, (_SSIM_K2 * _data_range(x)) ** 2
    sigma = (0.0,) * (x.ndim - 2) + (_SSIM_SIGMA, _SSIM_SIGMA)  # in-plane only

    def local_mean(values: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(values, sigma, truncate=_SSIM_TRUNCATE, mode="reflect")

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    inside = np.zeros_like(weights)
    inside[..., _SSIM_BORDER:-_SSIM_BORDER, _SSIM_BORDER:-_SSIM_BORDER] = 1.0
    if not (weights * inside).any():
        raise ValueError('Argument "mask" must cover pixels at least 5 pixels from the image border.')
    return float(np.average(ssim_map, weights=weights * inside))


def psnr(reference: np.ndarray, image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB, 20 log10(L / RMSE) over ``mask`` or all pixels.

    Higher is better; ``inf`` for identical images.
    """
    x, y, weights = _prepare(reference, image, mask)
    mse = float(np.average((x - y) ** 2, weights=weights))
    return math.inf if mse == 0.0 else float(10.0 * np.log10(_data_range(x) ** 2 / mse))


def nrmse(reference: np.ndarray, image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Normalised root-mean-square error, ||x - y|| / ||x|| over ``mask`` or all pixels.

    The Euclidean normalisation of scikit-image; fastMRI's NMSE is its square. Lower is
    better, 0 for identical images, 1 for an all-zero image.
    """
    x, y, weights = _prepare(reference, image, mask)
    return float(np.sqrt(np.sum(weights * (x - y) ** 2) / np.sum(weights * x**2)))


def perceptual(reference: np.ndarray, image: np.ndarray) -> float:
    """Pixel-domain visual information fidelity, VIF-p (Sheikh & Bovik 2006, IEEE TIP 15:430).

    The share of the reference's visual information (a Gaussian scale mixture seen through
    a noisy visual channel, at four scales) that survives in the image: 1 for identical
    images, towards 0 as information is lost; above 1 when contrast is enhanced. Higher is
    better. Computed by ``sewar.vifp`` on both images scaled by 255 / L, per slice, and
    averaged over the slices where the reference is not flat (empty slices hold no information).
    """
    x, y, _ = _prepare(reference, image, None)
    if min(x.shape[-2:]) < _VIF_MIN_SIZE:
        raise ValueError(f'Argument "reference" must be at least {_VIF_MIN_SIZE} pixels in-plane for VIF.')
    scale = _VIF_SCALE / _data_range(x)
    pairs = zip(x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:]), strict=True)  # (R, C) each
    informative = [(a, b) for a, b in pairs if np.ptp(a) > 0.0]  # a flat slice carries no information
    if not informative:
        raise ValueError('Argument "reference" must vary within at least one slice for VIF.')
    return float(np.mean([sewar.vifp(a * scale, b * scale) for a, b in informative]))


def reference_measures(
    reference: np.ndarray, image: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """All full-reference measures by name: ssim, psnr, nrmse (over ``mask``) and vif (whole image)."""
    return {
        "ssim": ssim(reference, image, mask),
        "psnr": psnr(reference, image, mask),
        "nrmse": nrmse(reference, image, mask),
        PERCEPTUAL_NAME: perceptual(reference, image),
    }


def composite_from_measures(measures: dict[str, float]) -> float:
    """0 (useless) .. 1 (identical): 0.4 exp(-NRMSE / 0.25) + 0.3 SSIM + 0.3 VIF, each clipped to 0..1.

    Why these terms: in the rank-based paper, MSE predicted radiologists' pairwise choices better
    than SSIM (70.3% vs 66.7%) and its learned metric behaved most like MSE, so the error term
    weighs most; SSIM adds structure, to which MSE is blind, and VIF the perceptual side. The
    error term maps NRMSE 0 / 0.1 / 0.25 / 0.5 to 1 / 0.67 / 0.37 / 0.14. PSNR is left out: it is
    NRMSE again on a log scale. VIF above 1 (contrast gain) counts as 1: no corruption improves
    on the reference. Higher is better.
    """
    terms = {
        "nrmse": math.exp(-measures["nrmse"] / _NRMSE_SCALE),
        "ssim": measures["ssim"],
        PERCEPTUAL_NAME: measures[PERCEPTUAL_NAME],
    }
    return float(sum(weight * min(max(terms[name], 0.0), 1.0) for name, weight in _WEIGHTS.items()))


def quality_label(measures: dict[str, float]) -> float:
    """The 0-100 reference quality label, 100 * :func:`composite_from_measures`. Higher is better."""
    return 100.0 * composite_from_measures(measures)


def true_snr(clean_magnitude: np.ndarray, noise_sigma: float, foreground: np.ndarray) -> float:
    """Mean clean signal in ``foreground`` over the noise sigma per channel. Higher is better.

    The quantity MRIQC's ``snrd`` estimates from the air (Dietrich et al. 2007, JMRI 26:375),
    known exactly here because the simulation chose sigma (see the noise record's ``sigma``).
    ``inf`` when sigma is 0.
    """
    if not math.isfinite(noise_sigma) or noise_sigma < 0:
        raise ValueError(f'Argument "noise_sigma" must be a finite non-negative number, got {noise_sigma!r}.')
    if foreground.shape != clean_magnitude.shape or foreground.dtype != np.bool_ or not foreground.any():
        raise ValueError('Argument "foreground" must be a non-empty boolean mask of the image\'s shape.')
    signal = float(np.mean(clean_magnitude[foreground]))
    return math.inf if noise_sigma == 0 else signal / noise_sigma


def _prepare(
    reference: np.ndarray, image: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images as float64 and the pixel weights (mask as 0/1, or all 1), validated once."""
    if reference.shape != image.shape or reference.ndim not in (2, 3):
        raise ValueError(
            f'Arguments "reference" and "image" must be 2D or 3D arrays of one shape, '
            f"got {reference.shape} and {image.shape}."
        )
    if mask is not None and (mask.shape != reference.shape or mask.dtype != np.bool_ or not mask.any()):
        raise ValueError('Argument "mask" must be a non-empty boolean array of the images\' shape.')
    x, y = np.asarray(reference, dtype=np.float64), np.asarray(image, dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError('Arguments "reference" and "image" must be finite.')
    if _data_range(x) <= 0.0:
        raise ValueError('Argument "reference" must have a positive maximum (it is the intensity range).')
    weights = np.ones_like(x) if mask is None else mask.astype(np.float64)
    return x, y, weights


def _data_range(reference: np.ndarray) -> float:
    """L, the intensity range measures are relative to: the reference's maximum (fastMRI)."""
    return float(reference.max())
