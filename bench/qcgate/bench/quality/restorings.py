"""Benign re-storings of a clean evaluation image: the same anatomy, stored the way another site would.

A gate that judges quality must not change its verdict when nothing about the image's quality
changed: the intensity scale and bit depth, mirroring, transposition, the field of view cropped to
the anatomy or grown with zero air, air zero-filled outside the anatomy, one 2D slice instead of a
volume. Each re-storing here is a deterministic function of the clean volume (no random draws) and
comes with its :class:`Storage`: where the re-stored voxels lie in the clean image's voxel grid and
how the intensities are stored, so that :func:`series_datasets` writes a series whose header
describes the same patient geometry (orientation, positions, spacing, phase-encoding direction) as
the clean one. A re-stored copy has no corruption: its reference is the clean image itself.

===================  =========================================================================
``rescaled-x0.01``   intensities times 0.01 (or 100), stored in 16 bits with a RescaleSlope
``rescaled-x100``    (the clean copy is stored in 12 bits without one)
``flipped-rows``     rows (or columns) stored in reverse order, the orientation cosine reversed
``flipped-columns``  with them
``transposed``       rows and columns swapped (cosines, spacing and phase encoding with them)
``cropped``          the field of view cut to the anatomy's bounding box and a margin
``zero-filled-air``  every voxel outside the (slightly grown) foreground set to exactly 0
``padded-air``       the matrix grown by half, zero air around the image
``single-slice``     the middle slice alone as a one-slice series (volumes of several slices)
===================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.valuerep import format_number_as_ds
from scipy import ndimage

from qcgate.metrics.segmentation import otsu_thresholds
from qcgate.synthetic.dicom_series import Orientation, mr_series_datasets

__all__ = [
    "RESTORINGS",
    "Storage",
    "foreground_mask",
    "restore",
    "restoring_applies",
    "series_datasets",
]

_CLEAN_STORED_MAX = 4095  # mr_series_datasets stores a volume without rescale in 0..4095
_STORED_MAX = 65535  # rescaled copies use all 16 bits
_MARGIN_FRACTION = 0.05  # of the in-plane matrix, around the anatomy when cropping
_MIN_MARGIN = 2  # voxels
_MASK_GROWTH = 2  # voxels the foreground grows by before air is zero-filled outside it
_MIN_COMPONENT_FRACTION = 0.1  # of the largest foreground component
_PAD_FRACTION = 0.25  # of the matrix, on each side: the matrix grows by half


@dataclass(frozen=True)
class Storage:
    """Where a re-stored volume lies in the clean volume's voxel grid, and how it is stored.

    Voxel ``(k, i, j)`` of the re-stored volume is voxel ``(k + offset[0], r, c)`` of the clean one,
    with ``(r, c) = in_plane @ (i, j) + offset[1:]``; ``in_plane`` holds only 0 and ±1 (flips,
    transposition). ``intensity_scale`` multiplies the stored values' meaning: the series is written
    with a RescaleSlope that keeps them in 16 bits.
    """

    in_plane: tuple[tuple[int, int], tuple[int, int]] = ((1, 0), (0, 1))
    offset: tuple[int, int, int] = (0, 0, 0)
    intensity_scale: float = 1.0

    @property
    def swaps_axes(self) -> bool:
        return self.in_plane[0][0] == 0

    def spacing_mm(self, clean: tuple[float, float, float]) -> tuple[float, float, float]:
        """(slice, row, column) spacing of the re-stored volume."""
        return (clean[0], clean[2], clean[1]) if self.swaps_axes else clean

    def phase_encode_axis(self, clean: int) -> int:
        """The array axis (-2 or -1) of the re-stored volume along which the phase was encoded."""
        return -3 - clean if self.swaps_axes else clean

    def acquired_share(self, clean: tuple[float, float] | None) -> tuple[float, float] | None:
        """The acquired share of k-space per in-plane axis of the re-stored volume: a crop or a pad
        keeps the pixel size, so the share; a transposition swaps the axes."""
        if clean is None:
            return None
        return (clean[1], clean[0]) if self.swaps_axes else clean


def foreground_mask(volume: np.ndarray) -> np.ndarray:
    """The anatomy of a (S, R, C) volume: Otsu's threshold on the in-plane smoothed volume, specks
    (components under a tenth of the largest) dropped, each slice's holes filled."""
    smoothed = ndimage.gaussian_filter(volume.astype(np.float32), (0.0, 1.0, 1.0))
    (threshold,) = otsu_thresholds(smoothed.ravel(), classes=2)
    mask = smoothed > threshold
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        mask = np.isin(labels, 1 + np.flatnonzero(sizes >= _MIN_COMPONENT_FRACTION * sizes.max()))
    return np.stack([ndimage.binary_fill_holes(plane) for plane in mask])


def _rescaled(factor: float) -> Callable[[np.ndarray], tuple[np.ndarray, Storage]]:
    def restoring(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
        return (volume * np.float32(factor)).astype(np.float32), Storage(intensity_scale=factor)

    return restoring


def _flipped_rows(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
    return volume[:, ::-1, :].copy(), Storage(((-1, 0), (0, 1)), (0, volume.shape[1] - 1, 0))


def _flipped_columns(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
    return volume[:, :, ::-1].copy(), Storage(((1, 0), (0, -1)), (0, 0, volume.shape[2] - 1))


def _transposed(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
    return np.ascontiguousarray(volume.transpose(0, 2, 1)), Storage(((0, 1), (1, 0)))


def _cropped(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
    """The bounding box of the anatomy over all slices, grown by a margin, clipped to the image."""
    rows, columns = np.nonzero(foreground_mask(volume).any(axis=0))
    margin = max(_MIN_MARGIN, round(_MARGIN_FRACTION * min(volume.shape[1:])))
    top, left = max(0, int(rows.min()) - margin), max(0, int(columns.min()) - margin)
    bottom = min(volume.shape[1], int(rows.max()) + 1 + margin)
    right = min(volume.shape[2], int(columns.max()) + 1 + margin)
    return volume[:, top:bottom, left:right].copy(), Storage(offset=(0, top, left))


def _zero_filled_air(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
    grown = ndimage.binary_dilation(
        foreground_mask(volume), np.ones((1, 3, 3), dtype=bool), iterations=_MASK_GROWTH
    )
    return np.where(grown, volume, np.float32(0.0)).astype(np.float32), Storage()


def _padded_air(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
    pad_rows, pad_columns = (round(_PAD_FRACTION * n) for n in volume.shape[1:])
    padded = np.pad(volume, ((0, 0), (pad_rows, pad_rows), (pad_columns, pad_columns)))
    return padded.astype(np.float32), Storage(offset=(0, -pad_rows, -pad_columns))


def _single_slice(volume: np.ndarray) -> tuple[np.ndarray, Storage]:
    middle = volume.shape[0] // 2
    return volume[middle : middle + 1].copy(), Storage(offset=(middle, 0, 0))


_RESTORINGS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, Storage]]] = {
    "rescaled-x0.01": _rescaled(0.01),
    "rescaled-x100": _rescaled(100.0),
    "flipped-rows": _flipped_rows,
    "flipped-columns": _flipped_columns,
    "transposed": _transposed,
    "cropped": _cropped,
    "zero-filled-air": _zero_filled_air,
    "padded-air": _padded_air,
    "single-slice": _single_slice,
}
RESTORINGS: tuple[str, ...] = tuple(_RESTORINGS)


def restoring_applies(name: str, volume: np.ndarray) -> bool:
    """Whether re-storing ``name`` changes ``volume`` (one slice of a one-slice image does not)."""
    return name != "single-slice" or volume.shape[0] > 1


def restore(volume: np.ndarray, name: str) -> tuple[np.ndarray, Storage]:
    """``volume`` (S, R, C) re-stored as ``name`` says, and where the result lies in its grid."""
    if name not in _RESTORINGS:
        raise ValueError(f'Argument "name" must be one of {list(RESTORINGS)}, got {name!r}.')
    return _RESTORINGS[name](volume)


def series_datasets(
    volume: np.ndarray,
    storage: Storage,
    *,
    clean: np.ndarray,
    spacing_mm: tuple[float, float, float],
    orientation: Orientation,
    phase_encode_axis: int,
    series_description: str,
    patient_id: str,
    uid_seed: str,
    acquired_share: tuple[float, float] | None = None,
) -> list[Dataset]:
    """The MR series of a re-stored ``volume``, stored and placed as the ``clean`` volume (S, R, C) was.

    :func:`mr_series_datasets` writes the clean image centred on the scanner origin, its intensities
    scaled into 0..4095. The re-stored copy keeps both: the same stored values (times
    ``storage.intensity_scale``, then in 16 bits with a RescaleSlope), and the same patient geometry:
    its row and column directions are the clean ones combined as ``storage.in_plane`` says, and its
    first voxel lies where that voxel lay in the clean image. Reversing or swapping in-plane axes may
    reverse the slice normal; the slices then step against it, which readers sort as for any series.
    The clean image's ``acquired_share`` (its header's acquisition matrix) is kept per axis.
    """
    axis = storage.phase_encode_axis(phase_encode_axis)
    low = min(float(clean.min()), 0.0)
    span = float(clean.max()) - low
    gain = _CLEAN_STORED_MAX / span if span > 0 else 1.0
    # ``volume`` is in the clean volume's units (times the intensity scale): into the clean copy's.
    physical = (volume - np.float32(low * storage.intensity_scale)) * np.float32(gain)
    rescale = (1.0, 0.0)  # the clean copy's stored values, exactly
    if storage.intensity_scale != 1.0:
        rescale = (max(float(physical.max()), 1e-12) / _STORED_MAX, 0.0)
    datasets = mr_series_datasets(
        physical,
        series_description=series_description,
        patient_id=patient_id,
        orientation=orientation,
        spacing_mm=storage.spacing_mm(spacing_mm),
        rescale=rescale,
        phase_encoding="COL" if axis == -2 else "ROW",
        uid_seed=uid_seed,
        acquired_share=storage.acquired_share(acquired_share),
    )
    cosines = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    row_cosine, column_cosine = cosines[:3], cosines[3:]  # the plane's, as written for the clean image
    normal = np.cross(row_cosine, column_cosine)
    slices, rows, columns = clean.shape
    step_slice, step_row, step_column = spacing_mm
    clean_first = -0.5 * (
        (slices - 1) * step_slice * normal
        + (rows - 1) * step_row * column_cosine
        + (columns - 1) * step_column * row_cosine
    )
    # Moving one voxel along a clean row index moves step_row along the column cosine, and so on.
    grid = np.stack([step_row * column_cosine, step_column * row_cosine])  # (2, 3): per clean (r, c)
    along = np.array(storage.in_plane, dtype=float).T @ grid  # (2, 3): per re-stored (i, j)
    new_column_cosine, new_row_cosine = (v / np.linalg.norm(v) for v in along)
    new_normal = np.cross(new_row_cosine, new_column_cosine)
    first = clean_first + storage.offset[0] * step_slice * normal + np.array(storage.offset[1:]) @ grid
    for k, ds in enumerate(datasets):
        position = first + k * step_slice * normal
        ds.ImageOrientationPatient = _ds(*new_row_cosine, *new_column_cosine)
        ds.ImagePositionPatient = _ds(*position)
        ds.SliceLocation = _ds(float(position @ new_normal))
    return datasets


def _ds(*values: float) -> str | list[str]:
    text = [format_number_as_ds(float(v) + 0.0) for v in values]  # + 0.0: no "-0.0"
    return text[0] if len(text) == 1 else text
