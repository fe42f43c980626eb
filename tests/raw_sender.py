"""Send crafted bytes over a real DICOM association, as a broken or hostile sender would.

pynetdicom's chunked-send mode streams a file's dataset bytes without decoding them, so the
receiver sees exactly the payload written here: garbage, truncated data, lying headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.presentation import build_context


def write_raw_instance(
    path: Path,
    sop_class: str,
    sop_instance: str,
    payload: bytes,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """A Part 10 file whose meta is valid and whose dataset bytes are exactly ``payload``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    with path.open("wb") as handle:
        handle.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(handle, meta, enforce_standard=True)
        handle.write(payload)
    return path


@contextmanager
def _chunked_send() -> Iterator[None]:
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def send_file_raw(
    port: int,
    path: Path,
    sop_class: str,
    transfer_syntax: str = ExplicitVRLittleEndian,
    called_ae: str = "QCGATE",
    calling_ae: str = "RAWSCU",
) -> int:
    """C-STORE the file's dataset bytes undecoded; returns the response status (-1: no association)."""
    ae = AE(ae_title=calling_ae)
    ae.requested_contexts = [build_context(sop_class, [transfer_syntax])]
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        return -1
    try:
        with _chunked_send():
            response = assoc.send_c_store(path)
        return int(response.Status) if "Status" in response else -1
    finally:
        assoc.release()


def dataset_bytes(dataset: Dataset) -> bytes:
    """Explicit VR little endian encoding of a dataset, without file meta."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, dataset)
    return buffer.getvalue()
