"""Every kind of bad input gets its own DICOM status, a log line, and the receiver keeps serving."""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragmented_frames
from pydicom.uid import JPEG2000Lossless, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification
from sqlalchemy import func, select

from qcgate.core.errors import (
    AbsurdDimensions,
    DiskWatermark,
    HeaderContradiction,
    InvalidUid,
    MissingPixelData,
    NotDicom,
    SopClassMismatch,
    SopClassNotAccepted,
    TruncatedDataset,
    UndecodablePixelData,
)
from qcgate.core.settings import MR_IMAGE_STORAGE, get_settings
from qcgate.harness.peers import c_echo, free_port
from qcgate.receiver.scp import start_receiver
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.tables import Instance, Series
from tests.raw_sender import dataset_bytes, send_file_raw, write_raw_instance

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
StartReceiver = Callable[..., tuple[int, Any]]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[StartReceiver]:
    servers = []

    def start(**overrides: object) -> tuple[int, object]:
        defaults: dict[str, object] = {"data_dir": tmp_path / "data", "min_free_disk_mb": 0}
        settings = get_settings(
            **{**defaults, **overrides, "dicom_host": "127.0.0.1", "dicom_port": free_port()}
        )
        upgrade_database(settings.effective_database_url)
        sessions = session_factory(create_database_engine(settings.effective_database_url))
        servers.append(start_receiver(settings, sessions))
        return settings.dicom_port, sessions

    yield start
    for server in servers:
        server.shutdown()


def mr_small() -> Dataset:
    return pydicom.dcmread(get_testdata_file("MR_small.dcm"))


def fresh(dataset: Dataset) -> Dataset:
    changed = copy.deepcopy(dataset)
    changed.SOPInstanceUID = generate_uid()
    return changed


def _send_dataset(tmp_path: Path, port: int, dataset: Dataset, payload: bytes | None = None) -> int:
    path = write_raw_instance(
        tmp_path / f"{dataset.SOPInstanceUID}.dcm"[-60:],
        dataset.SOPClassUID,
        dataset.SOPInstanceUID,
        dataset_bytes(dataset) if payload is None else payload,
    )
    return send_file_raw(port, path, dataset.SOPClassUID)


def _without_pixels() -> Dataset:
    dataset = fresh(mr_small())
    del dataset.PixelData
    return dataset


def _with(**attributes: object) -> Callable[[], Dataset]:
    def build() -> Dataset:
        dataset = fresh(mr_small())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the test means to write invalid values
            for keyword, value in attributes.items():
                setattr(dataset, keyword, value)
        return dataset

    return build


BAD_DATASETS = {
    "no pixel data": (_without_pixels, MissingPixelData.status),
    "wrong modality": (_with(Modality="CT"), HeaderContradiction.status),
    "absurd rows": (_with(Rows=60000), AbsurdDimensions.status),
    "absurd bits": (_with(BitsAllocated=12), AbsurdDimensions.status),
    "pixels shorter than header": (_with(Rows=512, Columns=512), HeaderContradiction.status),
    "series uid path traversal": (_with(SeriesInstanceUID="../../etc"), InvalidUid.status),
    "study uid with letters": (_with(StudyInstanceUID="1.2.abc"), InvalidUid.status),
}


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_bad_dataset_gets_its_status_and_receiver_survives(
    case: str, receiver: StartReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build, expected = BAD_DATASETS[case]
    port, _ = receiver()
    with caplog.at_level(logging.WARNING, logger="qcgate.receiver.scp"):
        assert _send_dataset(tmp_path, port, build()) == expected
    assert f"0x{expected:04X}" in caplog.text
    assert c_echo(port) == 0
    assert _send_dataset(tmp_path, port, fresh(mr_small())) == 0x0000
    assert not list((tmp_path / "data").rglob("etc*")), "a hostile UID created a path"


def test_not_dicom_is_refused(receiver: StartReceiver, tmp_path: Path) -> None:
    port, _ = receiver()
    dataset = fresh(mr_small())
    status = _send_dataset(tmp_path, port, dataset, payload=b"this is a text file, not an image" * 40)
    assert status == NotDicom.status
    assert c_echo(port) == 0


def test_truncated_dataset_is_refused(receiver: StartReceiver, tmp_path: Path) -> None:
    port, sessions = receiver()
    dataset = fresh(mr_small())
    encoded = dataset_bytes(dataset)
    assert (
        _send_dataset(tmp_path, port, dataset, payload=encoded[: len(encoded) - 3000])
        == TruncatedDataset.status
    )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 0


def test_sop_instance_mismatch_is_refused(receiver: StartReceiver, tmp_path: Path) -> None:
    port, _ = receiver()
    dataset = fresh(mr_small())
    path = write_raw_instance(
        tmp_path / "lie.dcm", dataset.SOPClassUID, generate_uid(), dataset_bytes(dataset)
    )
    assert send_file_raw(port, path, dataset.SOPClassUID) == SopClassMismatch.status


def test_non_mr_storage_is_refused_unless_configured(receiver: StartReceiver, tmp_path: Path) -> None:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    port, _ = receiver()
    assert _send_dataset(tmp_path, port, ct) == SopClassNotAccepted.status
    port_keeping, sessions = receiver(accept_other_storage=True, data_dir=tmp_path / "other")
    assert _send_dataset(tmp_path, port_keeping, ct) == 0x0000
    with sessions() as session:
        assert session.scalar(select(Instance.sop_class_uid)) == CT_IMAGE_STORAGE


def test_undecodable_compressed_pixels_are_refused(receiver: StartReceiver, tmp_path: Path) -> None:
    port, _ = receiver()
    dataset = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    (frame,) = [b"".join(f) for f in generate_fragmented_frames(dataset.PixelData, number_of_frames=1)]
    siz_end = frame.index(b"\xff\x52")  # the J2K main header up to its SIZ, then noise
    dataset.PixelData = encapsulate([frame[:siz_end] + bytes(range(256)) * 8])
    corrupt = tmp_path / "corrupt.dcm"
    dataset.save_as(corrupt, enforce_file_format=True)
    assert send_file_raw(port, corrupt, dataset.SOPClassUID, JPEG2000Lossless) == UndecodablePixelData.status


def test_disk_watermark_refuses_with_out_of_resources(receiver: StartReceiver, tmp_path: Path) -> None:
    port, _ = receiver(min_free_disk_mb=10**9)
    assert _send_dataset(tmp_path, port, fresh(mr_small())) == DiskWatermark.status


def test_duplicate_sop_instance_is_idempotent(receiver: StartReceiver, tmp_path: Path) -> None:
    port, sessions = receiver()
    dataset = fresh(mr_small())
    assert _send_dataset(tmp_path, port, dataset) == 0x0000
    assert _send_dataset(tmp_path, port, dataset) == 0x0000
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 1
        assert session.scalar(select(Series.instance_count)) == 1
    assert len(list((tmp_path / "data" / "spool").rglob("*.dcm"))) == 1


def test_unsupported_transfer_syntax_is_not_negotiated(receiver: StartReceiver) -> None:
    port, _ = receiver()
    ae = AE(ae_title="SCANNER")
    hevc = "1.2.840.10008.1.2.4.107"
    ae.add_requested_context(MRImageStorage, [hevc])
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="QCGATE")
    try:
        assert assoc.is_established
        assert [context.abstract_syntax for context in assoc.accepted_contexts] == [Verification]
        assert [context.transfer_syntax for context in assoc.rejected_contexts] == [[hevc]]
    finally:
        assoc.release()


def test_calling_ae_allow_list(receiver: StartReceiver) -> None:
    port, _ = receiver(allowed_calling_aes=["SCANNER1"])
    assert c_echo(port, calling_ae="INTRUDER") is None
    assert c_echo(port, calling_ae="SCANNER1") == 0


def test_mr_sop_class_constant_matches_pynetdicom() -> None:
    assert MRImageStorage == MR_IMAGE_STORAGE
