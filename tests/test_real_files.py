"""Real MR files that pydicom ships, in every transfer syntax qcgate accepts, through a real
association: bytes kept as received, pixels decoded identically on the worker side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.presentation import build_context

from qcgate.assessment.pipeline import assess_series
from qcgate.core.settings import Settings, get_settings
from qcgate.harness.peers import free_port
from qcgate.metrics.registry import load_suites
from qcgate.receiver.scp import start_receiver
from qcgate.store.database import create_database_engine, session_factory, upgrade_database

pytestmark = pytest.mark.slow  # each real file goes through the receiver and the scoring pipeline: 3-4 s each

REAL_FILES = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR2_J2KI.dcm",
    "MR2_J2KR.dcm",
    "MR2_UNCI.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_big_endian.dcm",
]


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = get_settings(
        data_dir=tmp_path_factory.mktemp("data"),
        dicom_host="127.0.0.1",
        dicom_port=free_port(),
        min_free_disk_mb=0,
    )
    upgrade_database(settings.effective_database_url)
    server = start_receiver(
        settings, session_factory(create_database_engine(settings.effective_database_url))
    )
    yield settings
    server.shutdown()


def _with_new_uids(source: Path, target: Path, transfer_syntax: str | None = None) -> pydicom.FileDataset:
    """The same pixels under fresh UIDs, so the test files (which share UIDs) do not collide."""
    dataset = pydicom.dcmread(source)
    dataset.SeriesInstanceUID, dataset.SOPInstanceUID = generate_uid(), generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    if transfer_syntax:
        dataset.file_meta.TransferSyntaxUID = transfer_syntax
    dataset.save_as(target, enforce_file_format=True)
    return dataset


def _send_as_is(settings: Settings, path: Path, dataset: pydicom.Dataset) -> int:
    ae = AE(ae_title="REALFILES")
    ae.requested_contexts = [build_context(dataset.SOPClassUID, [dataset.file_meta.TransferSyntaxUID])]
    assoc = ae.associate("127.0.0.1", settings.dicom_port, ae_title=settings.ae_title)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        assoc.release()


@pytest.mark.parametrize("name", [*REAL_FILES, "deflated"])
def test_real_file_is_stored_as_sent_and_decodes_for_scoring(
    receiver: Settings, tmp_path: Path, name: str
) -> None:
    source = Path(get_testdata_file("MR_small.dcm" if name == "deflated" else name))
    syntax = DeflatedExplicitVRLittleEndian if name == "deflated" else None
    dataset = _with_new_uids(source, tmp_path / "sent.dcm", syntax)
    sent = pydicom.dcmread(tmp_path / "sent.dcm")
    assert _send_as_is(receiver, tmp_path / "sent.dcm", sent) == 0x0000

    spooled = next(receiver.spool_dir.rglob(f"{dataset.SOPInstanceUID}.dcm"))
    stored = pydicom.dcmread(spooled)
    assert stored.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    np.testing.assert_array_equal(stored.pixel_array, sent.pixel_array)

    assessment = assess_series([spooled], load_suites(receiver), receiver.thresholds)
    assert assessment.outcome.value in ("done", "not_assessable"), assessment.reasons
    if assessment.outcome.value == "done":
        assert set(assessment.metrics) >= {"snr", "snrd", "efc"}
