"""Classic no-reference image quality measures, after MRIQC's definitions [Esteban2017]_.

Pure functions of an image and boolean masks of the same shape. Each returns ``nan`` where its
formula is undefined (an empty mask, a zero denominator) rather than an infinite or arbitrary
number; :class:`ClassicMetrics` turns a ``nan`` for the whole volume into
:class:`~qcgate.core.errors.NotAssessable` and keeps ``nan`` in per-slice values for slices without
enough foreground or background.

Means and standard deviations are used where MRIQC's pipeline feeds medians (and, for CJV, median
absolute deviations) into the same formulas: with our intensity-only segmentation the classes are
already the central part of each mode, and means keep the whole assessment within the time budget.
No bias-field correction precedes them, so strong intensity non-uniformity lowers SNR and CNR and
raises CJV, which is the behaviour a QC gate wants.

.. [Esteban2017] Esteban O et al., *MRIQC: Advancing the automatic prediction of image quality in MRI
   from unseen sites*, PLOS ONE 12(9):e0184661, 2017. doi:10.1371/journal.pone.0184661
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import xlogy

from qcgate.core.errors import NotAssessable
from qcgate.imaging.volume import Stack
from qcgate.metrics.base import MetricResult
from qcgate.metrics.segmentation import segment

# The standard deviation of Rayleigh-distributed background (magnitude of pure complex Gaussian
# noise of sigma per channel) is sigma * sqrt((4 - pi) / 2); dividing by this factor recovers sigma.
_RAYLEIGH_STD_FACTOR = math.sqrt((4.0 - math.pi) / 2.0)
_IN_PLANE_AXES = (1, 2)  # of a (slices, rows, cols) stack

_NAN = float("nan")


def snr(image: np.ndarray, fg_mask: np.ndarray) -> float:
    r"""Signal-to-noise ratio within one region, MRIQC's ``snr``.

    .. math:: \text{SNR} = \frac{\mu_F}{\sigma_F \sqrt{n / (n - 1)}}

    with :math:`\sigma_F` the population standard deviation of the :math:`n` voxels of the region,
    so the denominator is their sample standard deviation. Meaningful on a homogeneous tissue,
    where the spread is noise; on a whole head it would mostly measure anatomy. Higher is better.
    """
    values = image[fg_mask]
    if values.size < 2:
        return _NAN
    return _ratio(float(values.mean()), float(values.std(ddof=1)))


def snrd(image: np.ndarray, fg_mask: np.ndarray, bg_mask: np.ndarray) -> float:
    r"""Dietrich's SNR, the foreground mean over the noise estimated in the air [Dietrich2007]_.

    .. math:: \text{SNR}_d = \frac{\mu_F}{\sqrt{\frac{2}{4-\pi}}\,\sigma_\text{air}}

    The factor corrects the standard deviation of Rayleigh-distributed magnitude noise in air to
    the per-channel noise level (eq. A.12). Assumes single-channel-like magnitude noise in an
    air region free of artefacts. Higher is better.

    .. [Dietrich2007] Dietrich O et al., *Measurement of SNRs in MR images: influence of multichannel
       coils, parallel imaging and reconstruction filters*, JMRI 26(2):375-385, 2007.
       doi:10.1002/jmri.20969
    """
    signal, air = image[fg_mask], image[bg_mask]
    if signal.size == 0 or air.size < 2:
        return _NAN
    return _ratio(float(signal.mean()), float(air.std(ddof=1)) / _RAYLEIGH_STD_FACTOR)


def cnr(image: np.ndarray, tissue1_mask: np.ndarray, tissue2_mask: np.ndarray, bg_mask: np.ndarray) -> float:
    r"""Contrast-to-noise ratio of two tissues [Magnotta2006]_, MRIQC's ``cnr``.

    .. math:: \text{CNR} = \frac{|\mu_1 - \mu_2|}{\sqrt{\sigma_B^2 + \sigma_1^2 + \sigma_2^2}}

    with :math:`\sigma_B` the standard deviation in the air. Higher is better.

    .. [Magnotta2006] Magnotta VA, Friedman L, *Measurement of signal-to-noise and contrast-to-noise
       in the fBIRN multicenter imaging study*, J Digit Imaging 19(2):140-147, 2006.
       doi:10.1007/s10278-006-0264-x
    """
    first, second, air = image[tissue1_mask], image[tissue2_mask], image[bg_mask]
    if min(first.size, second.size, air.size) < 2:
        return _NAN
    spread = math.sqrt(float(air.var(ddof=1) + first.var(ddof=1) + second.var(ddof=1)))
    return _ratio(abs(float(first.mean()) - float(second.mean())), spread)


def cjv(image: np.ndarray, tissue1_mask: np.ndarray, tissue2_mask: np.ndarray) -> float:
    r"""Coefficient of joint variation of two tissues [Ganzetti2016]_, MRIQC's ``cjv``.

    .. math:: \text{CJV} = \frac{\sigma_1 + \sigma_2}{|\mu_1 - \mu_2|}

    Grows with noise, motion and intensity non-uniformity. Lower is better.

    .. [Ganzetti2016] Ganzetti M et al., *Intensity inhomogeneity correction of structural MR images:
       a data-driven approach to define input algorithm parameters*, Front Neuroinform 10:10, 2016.
       doi:10.3389/fninf.2016.00010
    """
    first, second = image[tissue1_mask], image[tissue2_mask]
    if min(first.size, second.size) < 2:
        return _NAN
    spread = float(first.std(ddof=1)) + float(second.std(ddof=1))
    return _ratio(spread, abs(float(first.mean()) - float(second.mean())))


def efc(image: np.ndarray) -> float:
    r"""Entropy focus criterion [Atkinson1997]_, normalised as MRIQC does.

    .. math::

        E = -\sum_j \frac{x_j}{B} \ln \frac{x_j}{B}, \quad B = \sqrt{\sum_j x_j^2}, \quad
        \text{EFC} = \frac{E}{\sqrt{N} \ln \sqrt{N}}

    The denominator is the entropy of a uniform image of the same :math:`N` voxels, so EFC is 1
    for a uniform image and 0 when all energy sits in one voxel. Ghosting and blurring spread energy
    into the background and raise it. Magnitudes :math:`|x|` are used so that a negative intercept
    cannot make the logarithm undefined. Lower is better.

    .. [Atkinson1997] Atkinson D et al., *Automatic correction of motion artifacts in magnetic
       resonance images using an entropy focus criterion*, IEEE Trans Med Imag 16(6):903-910, 1997.
       doi:10.1109/42.650886
    """
    magnitude = np.abs(image)
    energy = math.sqrt(float(np.square(magnitude).sum(dtype=np.float64)))
    if image.size < 2 or energy == 0.0:
        return _NAN
    share = magnitude / np.float32(energy)
    entropy = -float(xlogy(share, share).sum(dtype=np.float64))
    return entropy / (math.sqrt(image.size) * math.log(math.sqrt(image.size)))


def fber(image: np.ndarray, fg_mask: np.ndarray, bg_mask: np.ndarray) -> float:
    r"""Foreground-background energy ratio [Shehzad2015]_, MRIQC's ``fber``.

    .. math:: \text{FBER} = \frac{\operatorname{median}(|F|^2)}{\operatorname{median}(|B|^2)}

    Medians of the energy, as in MRIQC's current implementation (its documentation still says
    means), so that a ghost or a hot spot does not decide the value. Higher is better.

    .. [Shehzad2015] Shehzad Z et al., *The Preprocessed Connectomes Project Quality Assessment
       Protocol: a resource for measuring the quality of MRI data*, Front Neurosci, Conference
       Abstract: Neuroinformatics 2015. doi:10.3389/conf.fnins.2015.91.00047
    """
    inside, outside = image[fg_mask], image[bg_mask]
    if inside.size == 0 or outside.size == 0:
        return _NAN
    return _ratio(float(np.median(np.square(inside))), float(np.median(np.square(outside))))


def gsr(image: np.ndarray, fg_mask: np.ndarray, phase_encode_axis: int | None) -> float:
    r"""Ghost-to-signal ratio of N/2 (Nyquist) ghosts [Giannelli2010]_, MRIQC's ``gsr``.

    The ghost region is the foreground mask circularly shifted by half the matrix along the
    phase-encode axis, minus the foreground; the rest of the image outside the foreground is
    non-ghost background:

    .. math:: \text{GSR} = \frac{\mu_\text{ghost} - \mu_\text{non-ghost}}{\operatorname{median}(F)}

    When ``phase_encode_axis`` is None both in-plane axes of a (slices, rows, cols) volume are tried
    and the larger defined ratio is returned: the worse of the two is the safe reading when the
    header does not say. Lower is better.

    .. [Giannelli2010] Giannelli M et al., *Characterization of Nyquist ghost in EPI-fMRI acquisition
       sequences implemented on two clinical 1.5 T MR scanners using a phantom*, J Appl Clin Med
       Phys 11(4):170-180, 2010. doi:10.1120/jacmp.v11i4.3237
    """
    signal = image[fg_mask]
    if signal.size == 0:
        return _NAN
    level = float(np.median(signal))
    axes = _IN_PLANE_AXES if phase_encode_axis is None else (phase_encode_axis,)
    ratios = [_ratio(_ghost_excess(image, fg_mask, axis), level) for axis in axes]
    defined = [ratio for ratio in ratios if math.isfinite(ratio)]
    return max(defined) if defined else _NAN


class ClassicMetrics:
    """MRIQC-style measures of one stack, sharing one intensity-based segmentation.

    ``snr`` is taken on the brightest tissue class (the most homogeneous large region we can find
    without an atlas); ``snrd``, ``fber`` and ``gsr`` on the whole foreground; ``cnr`` and ``cjv``
    between the two brightest classes (see :mod:`qcgate.metrics.segmentation`). ``snr``, ``snrd``
    and ``efc`` also come per slice.
    """

    name = "classic"
    version = "1"
    algorithm = None

    def evaluate(self, stack: Stack) -> list[MetricResult]:
        """Score ``stack``; raise :class:`NotAssessable` when a measure is undefined for it."""
        image = stack.voxels  # (S, R, C)
        masks = segment(image)
        results = [
            MetricResult(
                "snr",
                snr(image, masks.bright_tissue),
                True,
                per_slice=_per_slice(snr, image, masks.bright_tissue),
            ),
            MetricResult(
                "snrd",
                snrd(image, masks.foreground, masks.background),
                True,
                per_slice=_per_slice(snrd, image, masks.foreground, masks.background),
            ),
            MetricResult("cnr", cnr(image, masks.tissue, masks.bright_tissue, masks.background), True),
            MetricResult("cjv", cjv(image, masks.tissue, masks.bright_tissue), False),
            MetricResult("efc", efc(image), False, per_slice=_per_slice(efc, image)),
            MetricResult("fber", fber(image, masks.foreground, masks.background), True),
            MetricResult("gsr", gsr(image, masks.foreground, stack.phase_encode_axis), False),
        ]
        undefined = [result.name for result in results if not math.isfinite(result.value)]
        if undefined:
            raise NotAssessable(
                f"{', '.join(undefined)} undefined for this image (an empty region or a zero denominator): "
                "typically a noise-free, zero-filled background or no contrast between tissue classes"
            )
        return results


def _per_slice(metric: Callable[..., float], image: np.ndarray, *masks: np.ndarray) -> tuple[float, ...]:
    """``metric`` on each slice of (S, R, C) ``image`` and ``masks``; nan where it is undefined."""
    return tuple(metric(image[index], *(mask[index] for mask in masks)) for index in range(image.shape[0]))


def _ghost_excess(image: np.ndarray, fg_mask: np.ndarray, axis: int) -> float:
    """Mean of the N/2-shifted foreground outside the foreground, minus the mean of the rest of it."""
    shifted = np.roll(fg_mask, fg_mask.shape[axis] // 2, axis=axis)
    ghost = image[shifted & ~fg_mask]
    rest = image[~shifted & ~fg_mask]
    if min(ghost.size, rest.size) == 0:
        return _NAN
    return float(ghost.mean()) - float(rest.mean())


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or nan when the denominator is zero (never an infinity)."""
    return numerator / denominator if denominator != 0.0 else _NAN
