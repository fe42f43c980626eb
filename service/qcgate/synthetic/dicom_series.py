"""Write a float volume as the MR Image Storage series a real scanner would send.

The receiver, the stack builder and the metrics are tested against these instances, so they carry
every attribute of the MR Image IOD that ``dciodvfy`` checks, with geometry that is consistent
(positions step along the slice normal by the slice spacing) and an acquisition description
(sequence, phase-encoding direction, acquisition matrix) that agrees with itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from qcgate.core import __version__

__all__ = ["Orientation", "PhaseEncoding", "mr_series_datasets", "write_series"]

Orientation = Literal["axial", "sagittal", "coronal"]
PhaseEncoding = Literal["ROW", "COL"]

# Row and column direction cosines in the patient (LPS) frame, as scanners write them.
_COSINES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),  # slices step superior
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # slices step to the patient's right
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),  # slices step posterior
}

_STORED_MAX = 4095  # 12-bit range used when no rescale is asked for, as most scanners store

# A 3 T MPRAGE: the T1-weighted protocol the phantom's contrast imitates.
_ACQUISITION: dict[str, object] = {
    "ImageType": ["ORIGINAL", "PRIMARY", "OTHER"],
    "ScanningSequence": ["GR", "IR"],
    "SequenceVariant": ["SK", "SP", "MP"],
    "ScanOptions": "",  # MPRAGE uses none of the defined terms
    "MRAcquisitionType": "3D",
    "SequenceName": "tfl3d1",
    "RepetitionTime": "2300",
    "EchoTime": "2.98",
    "InversionTime": "900",
    "FlipAngle": "9",
    "EchoTrainLength": 1,
    "NumberOfAverages": "1",
    "ImagingFrequency": "123.2",
    "ImagedNucleus": "1H",
    "EchoNumbers": [1],
    "MagneticFieldStrength": "3",
    "PixelBandwidth": "240",
    "PercentSampling": "100",
    "ReceiveCoilName": "Head_32",
    "TransmitCoilName": "Body",
    "PatientPosition": "HFS",
    "BodyPartExamined": "HEAD",
}


def mr_series_datasets(
    volume: np.ndarray,
    *,
    series_description: str,
    patient_id: str = "QCGATE^DEMO",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    series_number: int = 1,
    orientation: Orientation = "axial",
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
    rescale: tuple[float, float] | None = None,
    phase_encoding: PhaseEncoding = "ROW",
    modality: str = "MR",
    study_datetime: datetime | None = None,
    uid_seed: str | None = None,
    acquired_share: tuple[float, float] | None = None,
) -> list[FileDataset]:
    """One MR Image Storage instance per slice of ``volume`` (S, R, C), in slice order.

    Slice ``k`` lies at ``k * spacing_mm[0]`` along the orientation's slice normal, the volume
    centred on the scanner origin. ``spacing_mm`` is (slice, row, column): the row spacing is the
    distance between rows, PixelSpacing[0]. Without ``rescale`` the volume is scaled into 0..4095
    (only relative intensities matter to QC); with ``(slope, intercept)`` the stored value is
    ``(value - intercept) / slope``, written with RescaleSlope/RescaleIntercept so it round-trips.
    ``phase_encoding`` follows DICOM: "ROW" means phase encoded along a row (voxel axis 2), "COL"
    along a column (voxel axis 1). ``modality`` is written as given so that tests can build
    instances the gateway must refuse. With ``uid_seed`` every UID not passed in is derived from
    it, so a seed reproduces a series exactly; the frame of reference follows the study, because
    series of one study share the patient's coordinate system. ``acquired_share`` writes the
    acquisition matrix of an interpolated series: the share of the displayed k-space sampled along
    the rows' and the columns' axis (default: all of it).
    """
    if volume.ndim != 3:
        raise ValueError(f'Argument "volume" must be 3D (slices, rows, columns), got shape {volume.shape}.')
    if orientation not in _COSINES:
        raise ValueError(f'Argument "orientation" must be one of {sorted(_COSINES)}, got {orientation!r}.')
    if phase_encoding not in ("ROW", "COL"):
        raise ValueError(f'Argument "phase_encoding" must be "ROW" or "COL", got {phase_encoding!r}.')
    if min(spacing_mm) <= 0:
        raise ValueError(f'Argument "spacing_mm" must be positive, got {spacing_mm}.')

    def uid(*entropy: str) -> UID:
        return generate_uid(entropy_srcs=[uid_seed, *entropy]) if uid_seed is not None else generate_uid()

    study_uid = study_instance_uid or uid("study")
    series_uid = series_instance_uid or uid(study_uid, "series", str(series_number), series_description)
    when = study_datetime or datetime.now(UTC)
    stored, bits_stored = _stored_pixels(volume, rescale)
    shared = {
        **_series_attributes(patient_id, study_uid, series_uid, series_number, series_description, modality),
        **{f"{event}Date": when.strftime("%Y%m%d") for event in ("Study", "Series", "Content")},
        **{f"{event}Time": when.strftime("%H%M%S") for event in ("Study", "Series", "Content")},
        "FrameOfReferenceUID": generate_uid(entropy_srcs=[study_uid, "frame of reference"]),
        **_acquisition_attributes(volume.shape, spacing_mm, phase_encoding, acquired_share),
    }
    if rescale is not None:
        shared |= {"RescaleSlope": _ds(rescale[0]), "RescaleIntercept": _ds(rescale[1])}
    row_cosine, column_cosine = (np.array(c) for c in _COSINES[orientation])
    normal = np.cross(row_cosine, column_cosine)
    first = -0.5 * (
        (volume.shape[0] - 1) * spacing_mm[0] * normal
        + (volume.shape[1] - 1) * spacing_mm[1] * column_cosine
        + (volume.shape[2] - 1) * spacing_mm[2] * row_cosine
    )
    datasets = []
    for k, pixels in enumerate(stored):
        position = first + k * spacing_mm[0] * normal
        sop_uid = uid(series_uid, str(k))
        ds = _empty_instance(sop_uid)
        for keyword, value in shared.items():
            setattr(ds, keyword, value)
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = _ds(*row_cosine, *column_cosine)
        ds.ImagePositionPatient = _ds(*position)
        ds.SliceLocation = _ds(float(position @ normal))
        ds.set_pixel_data(pixels, "MONOCHROME2", bits_stored, generate_instance_uid=False)
        datasets.append(ds)
    return datasets


def write_series(datasets: Sequence[FileDataset], directory: Path | str) -> list[Path]:
    """Write each instance as ``<directory>/<InstanceNumber:04d>.dcm``, a conformant Part 10 file.

    ``enforce_file_format`` makes pydicom refuse to write a file without valid file meta, so a
    mistake here fails loudly rather than producing a file that only lenient readers accept.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = directory / f"{int(ds.InstanceNumber):04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _stored_pixels(volume: np.ndarray, rescale: tuple[float, float] | None) -> tuple[np.ndarray, int]:
    """The uint16 stored values and the Bits Stored that holds them."""
    if rescale is None:
        low = min(float(volume.min()), 0.0)
        span = float(volume.max()) - low
        scaled = (volume - low) * (_STORED_MAX / span if span > 0 else 0.0)
    else:
        slope, intercept = rescale
        if slope == 0:
            raise ValueError('Argument "rescale" must have a non-zero slope.')
        scaled = (volume - intercept) / slope
    stored = np.rint(scaled)
    if stored.min() < 0 or stored.max() > np.iinfo(np.uint16).max:
        raise ValueError(f'Argument "rescale" {rescale} maps the volume outside the uint16 range.')
    return stored.astype(np.uint16), max(12, int(stored.max()).bit_length())


def _series_attributes(
    patient_id: str, study_uid: str, series_uid: str, series_number: int, description: str, modality: str
) -> dict[str, object]:
    """Patient, study, series and equipment attributes, the same in every instance of the series."""
    return {
        "SpecificCharacterSet": "ISO_IR 100",
        "SOPClassUID": MRImageStorage,
        "PatientName": patient_id,
        "PatientID": patient_id,
        "PatientBirthDate": "19700101",
        "PatientSex": "O",
        "StudyInstanceUID": study_uid,
        "ReferringPhysicianName": "",
        "StudyID": "1",
        "AccessionNumber": "",
        "StudyDescription": "qcgate synthetic head",
        "Modality": modality,
        "SeriesInstanceUID": series_uid,
        "SeriesNumber": series_number,
        "SeriesDescription": description,
        "ProtocolName": description,
        "PositionReferenceIndicator": "",
        "Manufacturer": "qcgate synthetic",
        "ManufacturerModelName": "phantom",
        "StationName": "QCGATE",
        "SoftwareVersions": __version__,
        "AcquisitionNumber": 1,
    }


def _acquisition_attributes(
    shape: tuple[int, ...],
    spacing_mm: tuple[float, float, float],
    phase_encoding: PhaseEncoding,
    acquired_share: tuple[float, float] | None = None,
) -> dict[str, object]:
    """Sequence, spacing and encoding attributes. The acquisition matrix agrees with the phase axis
    and with ``acquired_share`` (the share of the displayed k-space sampled along the rows' and the
    columns' axis; all of it by default), and the phase field of view with the displayed one, so a
    reader (``qcgate.imaging.acquisition``) finds the resolution the image really has."""
    _, rows, columns = shape
    share = acquired_share or (1.0, 1.0)
    sampled_rows, sampled_columns = max(1, round(rows * share[0])), max(1, round(columns * share[1]))
    # Acquisition Matrix: frequency rows \ frequency columns \ phase rows \ phase columns.
    if phase_encoding == "ROW":
        matrix = [sampled_rows, 0, 0, sampled_columns]
        phase_fov, frequency_fov = columns * spacing_mm[2], rows * spacing_mm[1]
    else:
        matrix = [0, sampled_columns, sampled_rows, 0]
        phase_fov, frequency_fov = rows * spacing_mm[1], columns * spacing_mm[2]
    return {
        **_ACQUISITION,
        "PercentPhaseFieldOfView": _ds(round(100.0 * phase_fov / frequency_fov, 4)),
        "PixelSpacing": _ds(spacing_mm[1], spacing_mm[2]),
        "SliceThickness": _ds(spacing_mm[0]),
        "SpacingBetweenSlices": _ds(spacing_mm[0]),
        "AcquisitionMatrix": matrix,
        "InPlanePhaseEncodingDirection": phase_encoding,
    }


def _empty_instance(sop_instance_uid: UID) -> FileDataset:
    """A dataset with Part 10 file meta for one MR Image Storage instance."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)


def _ds(*values: float) -> str | list[str]:
    """Decimal String values of at most 16 characters, as the VR requires."""
    text = [format_number_as_ds(float(v)) for v in values]
    return text[0] if len(text) == 1 else text
