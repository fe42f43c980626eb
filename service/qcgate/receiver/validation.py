"""Decide whether a received instance is acceptable, and say precisely why not.

Each check raises the :mod:`qcgate.core.errors` leaf that carries its DICOM status; the handler maps
nothing itself. Messages never contain PHI (no names, IDs or UIDs), only what was wrong.
"""

from __future__ import annotations

import io

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from qcgate.core.errors import (
    AbsurdDimensions,
    HeaderContradiction,
    MissingPixelData,
    NotDicom,
    SopClassMismatch,
    SopClassNotAccepted,
    TruncatedDataset,
    UndecodablePixelData,
)
from qcgate.core.settings import Settings
from qcgate.store.repository import ReceivedInstance
from qcgate.store.spool import validate_uid

UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
IMAGE_STORAGE_PREFIX = "1.2.840.10008.5.1.4.1.1."


def tolerate_invalid_values() -> None:
    """Have pydicom read what it can without warnings: qcgate checks what matters itself, and
    ``warnings.catch_warnings`` is not thread-safe across association threads."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def parse_part10(encoded: bytes) -> Dataset:
    """Parse a DICOM Part 10 byte string; :class:`NotDicom` or :class:`TruncatedDataset` if it is not one."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(encoded))
    except (InvalidDicomError, ValueError, KeyError, NotImplementedError) as exc:
        raise NotDicom(f"not a DICOM dataset ({type(exc).__name__})") from exc
    except (EOFError, OSError) as exc:
        raise TruncatedDataset(f"the dataset ends early ({type(exc).__name__})") from exc
    if "SOPClassUID" not in dataset and "SOPInstanceUID" not in dataset:
        raise NotDicom("no SOP Class or Instance UID: not a DICOM dataset")
    _reject_truncated_last_element(dataset)
    return dataset


def _reject_truncated_last_element(dataset: Dataset) -> None:
    # pydicom returns short values silently when the stream ends inside an element; the raw,
    # not-yet-converted last element still records the length its header declared.
    last = dataset._dict[max(dataset._dict)]
    if isinstance(last, RawDataElement) and last.length != UNDEFINED_LENGTH:
        received = len(last.value or b"")
        if received < last.length:
            raise TruncatedDataset(f"the last element declares {last.length} bytes but {received} arrived")


def inspect_instance(
    dataset: Dataset, command_sop_class: str, command_sop_instance: str, settings: Settings
) -> ReceivedInstance:
    """Check identity, SOP class, modality and pixel geometry of a parsed instance."""
    sop_class = str(dataset.get("SOPClassUID", "")).rstrip("\x00 ")
    sop_instance = str(dataset.get("SOPInstanceUID", "")).rstrip("\x00 ")
    if sop_class != command_sop_class or sop_instance != command_sop_instance:
        raise SopClassMismatch("SOP Class/Instance UID in the dataset differ from the C-STORE request")
    scored = sop_class in settings.scored_sop_classes
    if not scored and not settings.accept_other_storage:
        raise SopClassNotAccepted(f"SOP class {sop_class} is not MR image storage")
    modality = str(dataset.get("Modality", "")).strip()
    if scored and modality != "MR":
        raise HeaderContradiction(f"MR image storage with Modality {modality or 'missing'!r}")
    instance = ReceivedInstance(
        study_instance_uid=validate_uid(str(dataset.get("StudyInstanceUID", "")), "StudyInstanceUID"),
        series_instance_uid=validate_uid(str(dataset.get("SeriesInstanceUID", "")), "SeriesInstanceUID"),
        sop_instance_uid=validate_uid(sop_instance, "SOPInstanceUID"),
        sop_class_uid=sop_class,
        transfer_syntax_uid=str(dataset.file_meta.get("TransferSyntaxUID", "")),
        modality=modality,
        station_name=str(dataset.get("StationName", "") or "")[:64],
        series_description=str(dataset.get("SeriesDescription", "") or "")[:64],
        scored=scored,
    )
    if sop_class.startswith(IMAGE_STORAGE_PREFIX):
        _check_pixels(dataset, settings)
    return instance


def _check_pixels(dataset: Dataset, settings: Settings) -> None:
    if not any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        raise MissingPixelData("image storage instance without Pixel Data")
    rows, columns = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    bits_allocated = int(dataset.get("BitsAllocated", 0) or 0)
    bits_stored = int(dataset.get("BitsStored", bits_allocated) or 0)
    if not (0 < rows <= settings.max_rows and 0 < columns <= settings.max_rows):
        raise AbsurdDimensions(f"{rows}x{columns} pixels is outside 1..{settings.max_rows}")
    if not 0 < frames <= settings.max_frames:
        raise AbsurdDimensions(f"{frames} frames is outside 1..{settings.max_frames}")
    if (
        samples not in (1, 3)
        or bits_allocated not in (1, 8, 16, 32, 64)
        or not 0 < bits_stored <= bits_allocated
    ):
        raise AbsurdDimensions(f"{samples} samples of {bits_stored}/{bits_allocated} bits is not an image")
    if "PixelData" not in dataset:
        return
    if dataset.file_meta.TransferSyntaxUID.is_encapsulated:
        _decode_or_reject(dataset)
        return
    expected = rows * columns * frames * samples * bits_allocated // 8
    actual = len(dataset.PixelData)
    if actual < expected:
        raise HeaderContradiction(f"Pixel Data holds {actual} bytes, the header implies {expected}")


def _decode_or_reject(dataset: Dataset) -> None:
    """Decode compressed pixels once on receipt: the only proof that the worker will manage it."""
    try:
        dataset.pixel_array  # noqa: B018 - decoding is the check
    except Exception as exc:  # noqa: BLE001 - every decoder failure means the same thing here
        syntax = dataset.file_meta.TransferSyntaxUID
        raise UndecodablePixelData(f"pixels in {syntax.name} do not decode ({type(exc).__name__})") from exc
