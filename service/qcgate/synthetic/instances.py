"""Build small, valid MR series from numpy arrays, for tests that need DICOM with known content.

``mr_series`` gives one classic MR Image Storage instance per slice; ``enhanced_mr`` gives one
Enhanced MR Image Storage instance holding every slice as a frame, its geometry in functional groups.
Both take *stored* values (uint16 or int16, shape (S, R, C)); the modality value is
``stored * slope + intercept``. ``qcgate.synthetic.dicom_series.write_series`` puts them on disk as
Part 10 files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def slice_positions(
    count: int, orientation: Sequence[float] = AXIAL, spacing_mm: float = 1.0
) -> list[tuple[float, float, float]]:
    """Positions of ``count`` contiguous slices starting at the origin, stepping along the normal."""
    x, y, z = np.cross(orientation[:3], orientation[3:]) * spacing_mm
    return [(float(index * x), float(index * y), float(index * z)) for index in range(count)]


def mr_series(
    stored: np.ndarray,
    *,
    orientation: Sequence[float] = AXIAL,
    positions: Sequence[Sequence[float]] | None = None,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    slope: float = 1.0,
    intercept: float = 0.0,
    phase_direction: str | None = None,
    temporal_positions: Sequence[int] | None = None,
    series_uid: str | None = None,
) -> list[FileDataset]:
    """One classic MR instance per slice of ``stored`` (S, R, C); InstanceNumber follows S."""
    ids = _series_ids(series_uid)
    positions = positions if positions is not None else slice_positions(len(stored), orientation)
    series = []
    for index, pixels in enumerate(stored):
        ds = _instance(MR_IMAGE_STORAGE, ids, pixels[None])
        ds.InstanceNumber = index + 1
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = list(positions[index])
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = 1.0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        if phase_direction is not None:
            ds.InPlanePhaseEncodingDirection = phase_direction
        if temporal_positions is not None:
            ds.TemporalPositionIdentifier = temporal_positions[index]
        series.append(ds)
    return series


def enhanced_mr(
    stored: np.ndarray,
    *,
    orientation: Sequence[float] = AXIAL,
    positions: Sequence[Sequence[float]] | None = None,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    slope: float = 1.0,
    intercept: float = 0.0,
    phase_direction: str | None = None,
    temporal_positions: Sequence[int] | None = None,
) -> FileDataset:
    """One Enhanced MR instance whose frames are the slices of ``stored`` (S, R, C).

    Orientation, pixel measures, rescale and phase direction go in the shared functional groups,
    positions and temporal positions in the per-frame groups: the layout scanners commonly write.
    """
    positions = positions if positions is not None else slice_positions(len(stored), orientation)
    ds = _instance(ENHANCED_MR_IMAGE_STORAGE, _series_ids(None), stored)
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(stored)
    shared = Dataset()
    shared.PlaneOrientationSequence = [_item(ImageOrientationPatient=list(orientation))]
    shared.PixelMeasuresSequence = [_item(PixelSpacing=list(pixel_spacing), SliceThickness=1.0)]
    shared.PixelValueTransformationSequence = [
        _item(RescaleSlope=slope, RescaleIntercept=intercept, RescaleType="US")
    ]
    if phase_direction is not None:
        shared.MRFOVGeometrySequence = [_item(InPlanePhaseEncodingDirection=phase_direction)]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for index, position in enumerate(positions):
        group = Dataset()
        group.PlanePositionSequence = [_item(ImagePositionPatient=list(position))]
        if temporal_positions is not None:
            group.FrameContentSequence = [_item(TemporalPositionIndex=temporal_positions[index])]
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return ds


def _item(**elements: object) -> Dataset:
    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return item


def _series_ids(series_uid: str | None) -> dict[str, str]:
    """The UIDs all instances of one series share."""
    return {
        "StudyInstanceUID": generate_uid(),
        "SeriesInstanceUID": series_uid or generate_uid(),
        "FrameOfReferenceUID": generate_uid(),
    }


def _instance(sop_class_uid: str, ids: dict[str, str], frames: np.ndarray) -> FileDataset:
    """An MR instance with file meta, identifiers and an uncompressed 16-bit greyscale image."""
    if frames.dtype not in (np.uint16, np.int16):
        raise TypeError(f'Argument "stored" must have dtype uint16 or int16, not {frames.dtype}.')
    sop_instance_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    for keyword, uid in ids.items():
        setattr(ds, keyword, uid)
    ds.Modality = "MR"
    ds.PatientID = "PHANTOM"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(frames.shape[-2]), int(frames.shape[-1])
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = int(frames.dtype == np.int16)
    ds.PixelData = np.ascontiguousarray(frames, dtype=frames.dtype.newbyteorder("<")).tobytes()
    return ds
