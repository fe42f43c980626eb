"""Decide whether a received instance is acceptable, and say precisely why not.

Each check raises the :mod:`qcgate.core.errors` leaf that carries its DICOM status; the handler maps
nothing itself. Messages never contain PHI (no names, IDs or UIDs), only what was wrong.
"""

from __future__ import annotations

import io
import struct
import zlib

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.pixels import pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, RLELossless

from qcgate.core.errors import (
    AbsurdDimensions,
    DecodedSizeExceeded,
    HeaderContradiction,
    MissingPixelData,
    NotDicom,
    SopClassMismatch,
    SopClassNotAccepted,
    TruncatedDataset,
    UndecodablePixelData,
)
from qcgate.core.settings import Settings
from qcgate.receiver.codestreams import frame_geometry, rle_segments
from qcgate.store.repository import ReceivedInstance
from qcgate.store.spool import validate_uid

UNDEFINED_LENGTH = 0xFFFFFFFF
_PART10_META_START = 132  # 128-byte preamble and "DICM"
_DEFLATE_UID = str(DeflatedExplicitVRLittleEndian).encode()
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
IMAGE_STORAGE_PREFIX = "1.2.840.10008.5.1.4.1.1."


def tolerate_invalid_values() -> None:
    """Have pydicom read what it can without warnings: qcgate checks what matters itself, and
    ``warnings.catch_warnings`` is not thread-safe across association threads."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def validate_instance(
    encoded: bytes,
    settings: Settings,
    command_sop_class: str | None = None,
    command_sop_instance: str | None = None,
) -> ReceivedInstance:
    """Everything the receiver checks in an instance's bytes, in order: size, bounded inflate, Part 10
    parse, identity, geometry, codestreams, decode. The one entry for a C-STORE, a file read back
    from the spool and the fuzzer. Without the C-STORE request's UIDs (a file), the dataset's stand
    for them."""
    if len(encoded) > settings.max_instance_mb * 1024 * 1024:
        raise AbsurdDimensions(f"instance of {len(encoded)} bytes exceeds {settings.max_instance_mb} MB")
    check_inflated_size(encoded, settings.max_instance_mb * 1024 * 1024)
    dataset = parse_part10(encoded)
    sop_class = (
        _text(dataset, "SOPClassUID").rstrip("\x00 ") if command_sop_class is None else command_sop_class
    )
    sop_instance = (
        _text(dataset, "SOPInstanceUID").rstrip("\x00 ")
        if command_sop_instance is None
        else command_sop_instance
    )
    return inspect_instance(dataset, sop_class, sop_instance, settings)


def check_inflated_size(encoded: bytes, max_bytes: int) -> None:
    """Inflate a deflated dataset under a cap before pydicom inflates it whole.

    pydicom inflates the entire dataset when it reads it: a 153 kB deflated instance carrying 150 MB
    of Pixel Data was accepted (issue 12). The file meta (explicit VR little endian, never deflated)
    says the transfer syntax and, in its group length, where the deflated dataset starts.
    """
    meta_end = _PART10_META_START + 12
    if encoded[128:132] != b"DICM" or _DEFLATE_UID not in encoded[:4096] or len(encoded) < meta_end:
        return
    if encoded[_PART10_META_START : _PART10_META_START + 6] != b"\x02\x00\x00\x00UL":
        return  # no group length: pydicom finds the end of the meta its own way (and is bounded below)
    (group_length,) = struct.unpack_from("<I", encoded, _PART10_META_START + 8)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(encoded[meta_end + group_length :], max_bytes + 1)
    except zlib.error as exc:
        raise NotDicom(f"the deflated dataset does not inflate ({exc})") from exc
    if len(inflated) > max_bytes or inflater.unconsumed_tail:
        raise DecodedSizeExceeded(f"the deflated dataset inflates past {max_bytes} bytes")


def parse_part10(encoded: bytes) -> Dataset:
    """Parse a DICOM Part 10 byte string; :class:`NotDicom` or :class:`TruncatedDataset` if it is not one.

    Every top-level element is decoded here (pydicom decodes lazily, on first read), so that a
    malformed one is refused with a status now instead of failing later in another check.
    """
    try:
        dataset = pydicom.dcmread(io.BytesIO(encoded))
        if "SOPClassUID" not in dataset and "SOPInstanceUID" not in dataset:
            raise NotDicom("no SOP Class or Instance UID: not a DICOM dataset")
        _reject_truncated_last_element(dataset)  # before decoding: it reads the raw element
        for _ in dataset:
            pass
    except (NotDicom, TruncatedDataset):
        raise
    except (EOFError, OSError) as exc:
        raise TruncatedDataset(f"the dataset ends early ({type(exc).__name__})") from exc
    except zlib.error as exc:  # found by fuzzing: pydicom lets a broken deflate stream through
        raise TruncatedDataset(f"the deflated dataset does not inflate ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - pydicom signals malformed input with many types
        # (InvalidDicomError, ValueError, KeyError, NotImplementedError, BytesLengthException,
        # struct.error ...; tests/fuzz/regressions holds the ones fuzzing found)
        raise NotDicom(f"not a DICOM dataset, or an element does not decode ({type(exc).__name__})") from exc
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is None or not UID(str(syntax)).is_transfer_syntax:  # found by fuzzing
        raise NotDicom("the file meta names no transfer syntax")
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
    sop_class = _text(dataset, "SOPClassUID").rstrip("\x00 ")
    sop_instance = _text(dataset, "SOPInstanceUID").rstrip("\x00 ")
    if sop_class != command_sop_class or sop_instance != command_sop_instance:
        raise SopClassMismatch("SOP Class/Instance UID in the dataset differ from the C-STORE request")
    scored = sop_class in settings.scored_sop_classes
    if not scored and not settings.accept_other_storage:
        raise SopClassNotAccepted(f"SOP class {sop_class} is not MR image storage")
    modality = _text(dataset, "Modality").strip()
    if scored and modality != "MR":
        raise HeaderContradiction(f"MR image storage with Modality {modality or 'missing'!r}")
    decoded = _check_pixels(dataset, settings) if sop_class.startswith(IMAGE_STORAGE_PREFIX) else 0
    return ReceivedInstance(
        study_instance_uid=validate_uid(_text(dataset, "StudyInstanceUID"), "StudyInstanceUID"),
        series_instance_uid=validate_uid(_text(dataset, "SeriesInstanceUID"), "SeriesInstanceUID"),
        sop_instance_uid=validate_uid(sop_instance, "SOPInstanceUID"),
        sop_class_uid=sop_class,
        transfer_syntax_uid=str(dataset.file_meta.get("TransferSyntaxUID", "")),
        modality=modality,
        station_name=_text(dataset, "StationName")[:64],
        series_description=_text(dataset, "SeriesDescription")[:64],
        protocol_name=_text(dataset, "ProtocolName")[:64],
        scored=scored,
        decoded_bytes=decoded,
    )


def _text(dataset: Dataset, keyword: str) -> str:
    """An attribute as text; a sequence where text belongs is refused (found by fuzzing: printing
    one decodes its nested elements, which may not decode)."""
    value = dataset.get(keyword, "")
    if isinstance(value, Dataset | Sequence):
        raise HeaderContradiction(f"{keyword} holds a sequence, not a value")
    return str(value or "")


def _number(dataset: Dataset, keyword: str, default: int) -> int:
    """An integer attribute, ``default`` when absent or empty; anything else is refused."""
    value = dataset.get(keyword, default)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError, OverflowError) as exc:
        raise AbsurdDimensions(f"{keyword} is not a number") from exc


def _check_pixels(dataset: Dataset, settings: Settings) -> int:
    """Check the pixels and return how many bytes they decode to."""
    if not any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        raise MissingPixelData("image storage instance without Pixel Data")
    rows, columns = _number(dataset, "Rows", 0), _number(dataset, "Columns", 0)
    frames = _number(dataset, "NumberOfFrames", 1) or 1
    samples = _number(dataset, "SamplesPerPixel", 1) or 1
    bits_allocated = _number(dataset, "BitsAllocated", 0)
    bits_stored = _number(dataset, "BitsStored", bits_allocated)
    pixels = dataset.get("PixelData", b"absent")
    if not isinstance(pixels, bytes) or not pixels:  # found by fuzzing: a sequence, or nothing, there
        raise MissingPixelData("Pixel Data holds no byte string")
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
    expected = (rows * columns * frames * samples * bits_allocated + 7) // 8
    if "PixelData" not in dataset:
        return expected
    if expected > settings.max_decoded_mb * 1024 * 1024:
        raise DecodedSizeExceeded(
            f"{expected} bytes of pixels exceed max_decoded_mb ({settings.max_decoded_mb})"
        )
    if dataset.file_meta.TransferSyntaxUID.is_encapsulated:
        _check_codestreams(dataset, rows, columns, frames, samples, bits_allocated)
        _decode_or_reject(dataset, frames)
        return expected
    actual = len(dataset.PixelData)
    if actual < expected:
        raise HeaderContradiction(f"Pixel Data holds {actual} bytes, the header implies {expected}")
    if actual > expected + 1:  # one byte of padding to an even length is allowed
        raise HeaderContradiction(
            f"Pixel Data holds {actual} bytes, more than the {expected} the header implies"
        )
    return expected


def _check_codestreams(
    dataset: Dataset, rows: int, columns: int, frames: int, samples: int, bits_allocated: int
) -> None:
    """Each frame's own header must agree with the DICOM header before anything is decoded."""
    rle = dataset.file_meta.TransferSyntaxUID == RLELossless
    try:
        for found, fragments in enumerate(
            generate_fragmented_frames(dataset.PixelData, number_of_frames=frames), 1
        ):
            if found > frames:
                raise HeaderContradiction(f"Pixel Data holds more than the {frames} frame(s) the header says")
            first = fragments[0] if fragments else b""
            if rle:
                segments = rle_segments(first)
                if segments is not None and segments != samples * ((bits_allocated + 7) // 8):
                    raise HeaderContradiction(
                        f"an RLE frame has {segments} segments, the header implies "
                        f"{samples * ((bits_allocated + 7) // 8)}"
                    )
                continue
            geometry = frame_geometry(first)
            if geometry is None:
                continue
            if (geometry.rows, geometry.columns) != (rows, columns) or geometry.components != samples:
                raise HeaderContradiction(
                    f"a frame's codestream is {geometry.rows}x{geometry.columns}x{geometry.components},"
                    f" the header says {rows}x{columns}x{samples}"
                )
            if geometry.bits > bits_allocated:
                raise HeaderContradiction(
                    f"a frame's codestream has {geometry.bits}-bit samples,"
                    f" the header allocates {bits_allocated}"
                )
    except (ValueError, KeyError, struct.error) as exc:
        raise UndecodablePixelData(
            f"the encapsulated Pixel Data is malformed ({type(exc).__name__})"
        ) from exc


def _decode_or_reject(dataset: Dataset, frames: int) -> None:
    """Decode compressed pixels once on receipt: the only proof that the worker will manage it.

    One frame at a time, so the receiving thread holds one decoded frame, not the instance.
    """
    try:
        for index in range(frames):
            pixel_array(dataset, index=index)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a Rust decoder's panic (pyo3's PanicException) is a
        # BaseException: found by fuzzing (tests/fuzz/regressions), it killed the association thread.
        syntax = dataset.file_meta.TransferSyntaxUID
        raise UndecodablePixelData(f"pixels in {syntax.name} do not decode ({type(exc).__name__})") from exc
