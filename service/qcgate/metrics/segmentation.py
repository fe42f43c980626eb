"""Foreground, background and two tissue classes of an arbitrary MR volume, without an atlas.

MRIQC segments brain tissue with templates; qcgate sees any anatomy (knee, spine, phantom), so it
relies on intensity alone:

* **foreground**: Otsu's threshold [Otsu1979]_ on the slices smoothed with a 1-voxel Gaussian, keeping
  connected components at least a tenth the size of the largest (noise specks go, but the separate
  tubes of a multi-compartment phantom or two legs stay) and filling holes, so dark structures inside
  the object (CSF, bone, vessels) count as foreground;
* **background**: everything farther than a margin from the foreground. The margin keeps partial
  volume, ringing and near wrap-around out of the noise estimate. Voxels at exactly the volume's
  minimum are left out too: that is the (rescaled) zero written as padding by reformatting (MPR) or
  masking, not measured noise (MRIQC's ``rotmask``). Rician noise reaches its minimum in a handful
  of voxels at most, so little real noise is lost;
* **tissue classes**: a 3-class Otsu of the smoothed foreground intensities; the two brightest classes
  stand in for MRIQC's WM and GM. With no atlas the anatomy is unknown, but the darkest class of a
  foreground is mostly fluid, bone, air cavities and partial volume, which would dominate a contrast
  measure without saying anything about the tissue the scan was made for. Classes are chosen on
  smoothed intensities so that the raw noise inside each class is not truncated by the selection,
  and their boundaries (voxels with another class among their four in-plane neighbours) are peeled
  off so that partial volume does not pass for noise.

Intensity alone cannot tell dim tissue from air, nor a strong ghost from tissue. Where bright fat
dominates (shoulder, abdomen) the threshold can fall above dim muscle, which then counts as
background and lowers SNRd and FBER; a ghost brighter than the threshold joins the foreground and
lowers GSR (EFC still sees it).

.. [Otsu1979] Otsu N, *A threshold selection method from gray-level histograms*, IEEE Trans Syst Man
   Cybern 9(1):62-66, 1979. doi:10.1109/TSMC.1979.4310076
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qcgate.core.errors import NotAssessable

_SMOOTHING_SIGMA_VOXELS = (0.0, 1.0, 1.0)  # in-plane only: slices are often thick or gapped
_MIN_COMPONENT_FRACTION = 0.1  # of the largest component
_BACKGROUND_MARGIN_FRACTION = 0.04  # of the in-plane matrix size: 10 voxels at 256
_MIN_CORE_FRACTION = 0.1  # of a tissue class left after peeling its boundary, else it stays whole
_HISTOGRAM_BINS = 256
_HISTOGRAM_SAMPLES = 1_000_000  # thresholds are read off at most this many (strided) voxels


@dataclass(frozen=True)
class Segmentation:
    """Boolean masks of one (S, R, C) volume, as used by the classic metrics."""

    foreground: np.ndarray  # (S, R, C) the imaged object, holes filled
    background: np.ndarray  # (S, R, C) air beyond the margin around the foreground
    tissue: np.ndarray  # (S, R, C) the middle intensity class of the foreground, boundaries peeled
    bright_tissue: np.ndarray  # (S, R, C) the brightest intensity class, boundaries peeled


def segment(volume: np.ndarray) -> Segmentation:
    """Split ``volume`` (S, R, C) into foreground, background and two tissue classes.

    Raises :class:`NotAssessable` when there is nothing to split: a constant image, an object filling
    the whole field of view, zero-filled air, or a foreground with fewer than three intensity levels.
    """
    if float(volume.max()) == float(volume.min()):
        raise NotAssessable("the image has one intensity everywhere; there is no object to assess")
    smoothed = ndimage.gaussian_filter(volume, _SMOOTHING_SIGMA_VOXELS)
    (threshold,) = otsu_thresholds(smoothed.ravel(), classes=2)
    foreground = _fill_holes(_drop_small_components(smoothed > threshold))
    margin = max(1, round(_BACKGROUND_MARGIN_FRACTION * min(volume.shape[1:])))
    near = ndimage.maximum_filter(foreground, size=(1, 2 * margin + 1, 2 * margin + 1))
    background = ~near & (volume != volume.min())
    if not background.any():
        raise NotAssessable(
            "no background left to measure noise in: the object fills the field of view "
            "or the air is zero-filled"
        )
    low, high = otsu_thresholds(smoothed[foreground], classes=3)
    classes = foreground.astype(np.uint8)  # 0 outside, then 1, 2, 3 from dark to bright
    classes += foreground & (smoothed > low)
    classes += foreground & (smoothed > high)
    interior = ~_class_boundaries(classes)
    return Segmentation(
        foreground, background, _peeled(classes == 2, interior), _peeled(classes == 3, interior)
    )


def otsu_thresholds(values: np.ndarray, classes: int) -> np.ndarray:
    """The ``classes - 1`` thresholds maximising between-class variance (multi-level Otsu).

    Exhaustive over a histogram of at most a million strided samples between the 0.1 and 99.9
    percentiles: a few hot voxels (vessels, fat, a marker) would otherwise squeeze all tissue into a
    handful of bins. Raises :class:`NotAssessable` when ``values`` cannot be split that many ways.
    """
    sample = values[:: max(1, values.size // _HISTOGRAM_SAMPLES)]
    low, high = np.percentile(sample, [0.1, 99.9])
    if not high > low:
        raise NotAssessable(f"too few intensity levels to separate {classes} classes")
    counts, edges = np.histogram(sample, bins=_HISTOGRAM_BINS, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    mass = np.concatenate(([0.0], np.cumsum(counts)))  # mass[i]: voxels in bins [0, i)
    moment = np.concatenate(([0.0], np.cumsum(counts * centres)))
    cuts = np.meshgrid(*[np.arange(1, _HISTOGRAM_BINS)] * (classes - 1), indexing="ij")
    bounds = [np.zeros_like(cuts[0]), *cuts, np.full_like(cuts[0], _HISTOGRAM_BINS)]
    score = np.zeros(cuts[0].shape)
    valid = np.ones(cuts[0].shape, dtype=bool)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        weight = mass[np.maximum(stop, start)] - mass[start]
        valid &= (stop > start) & (weight > 0)
        score += (moment[np.maximum(stop, start)] - moment[start]) ** 2 / np.maximum(weight, 1.0)
    if not valid.any():
        raise NotAssessable(f"too few intensity levels to separate {classes} classes")
    best = np.unravel_index(np.argmax(np.where(valid, score, -np.inf)), score.shape)
    return np.array([edges[cut[best]] for cut in cuts])


def _class_boundaries(classes: np.ndarray) -> np.ndarray:
    """Voxels with a different class among their four in-plane neighbours (S, R, C)."""
    boundaries = np.zeros(classes.shape, dtype=bool)
    for axis in (1, 2):
        before = [slice(None)] * 3
        after = [slice(None)] * 3
        before[axis], after[axis] = slice(None, -1), slice(1, None)
        step = classes[tuple(before)] != classes[tuple(after)]
        boundaries[tuple(before)] |= step
        boundaries[tuple(after)] |= step
    return boundaries


def _peeled(tissue: np.ndarray, interior: np.ndarray) -> np.ndarray:
    """``tissue`` without its boundary voxels, unless that leaves less than a tenth of it.

    Smoothing gives class boundaries intermediate values, and those partial-volume voxels would pass
    for noise in the class's spread. A class that is mostly boundary is no tissue but a split of one
    noisy intensity mode (a uniform phantom); it is kept whole, and CNR near 0 then says so.
    """
    core = tissue & interior
    return core if np.count_nonzero(core) >= _MIN_CORE_FRACTION * np.count_nonzero(tissue) else tissue


def _drop_small_components(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        raise NotAssessable("no object stands out from the background")
    if count == 1:  # the usual case after smoothing, and counting sizes is the slow part
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # the unlabelled rest
    keep = sizes >= _MIN_COMPONENT_FRACTION * sizes.max()
    return keep[labels]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every gap in ``mask`` that does not reach the in-plane edge of the field of view.

    Only the four in-plane faces count as outside: slabs routinely cut through the object, and a
    hole opened by the first or last slice is still inside it (for one slice this is a 2D fill).
    Labelling the complement once is much faster than ``ndimage.binary_fill_holes`` on big volumes.
    """
    labels, _ = ndimage.label(~mask)
    edge = np.concatenate(
        (labels[:, 0, :].ravel(), labels[:, -1, :].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel())
    )
    outside = np.zeros(labels.max() + 1, dtype=bool)
    outside[edge] = True
    outside[0] = False  # label 0 is the mask itself
    return ~outside[labels]
