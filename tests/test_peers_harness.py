"""The delivery peers prove themselves with real traffic before delivery tests lean on them.

DCMTK's storescu and dcmsend send MR images, a Comprehensive 3D SR and a Key Object Selection to
storescp and to Orthanc; storescp's fault options are shown doing what ``tests/storescp_peer.py``
says; the webhook receiver is shown verifying the signature scheme and failing on demand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    UID,
    Comprehensive3DSRStorage,
    ExplicitVRLittleEndian,
    KeyObjectSelectionDocumentStorage,
    generate_uid,
)
from pynetdicom import AE

from qcgate.harness import orthanc_peer, storescp_peer
from qcgate.harness import webhook_receiver as webhook_module
from qcgate.harness.orthanc_peer import OrthancPeer
from qcgate.harness.peers import require_peer, storescu
from qcgate.harness.storescp_peer import StorescpPacs, dcmsend
from qcgate.harness.webhook_receiver import WebhookReceiver, sign, signed_headers
from qcgate.synthetic.dicom_series import write_series
from qcgate.synthetic.instances import mr_series

COMPREHENSIVE_3D_SR = Comprehensive3DSRStorage
KEY_OBJECT_SELECTION = KeyObjectSelectionDocumentStorage

StartPacs = Callable[..., StorescpPacs]

_EMPTY_TYPE_2 = (
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "Manufacturer",
)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def structured_document(evidence: Sequence[Dataset], sop_class_uid: UID) -> FileDataset:
    """A small SR document (Comprehensive 3D SR or Key Object Selection) about ``evidence``.

    Built by hand with pydicom, not highdicom (not a declared dependency): the peers only need a
    well-formed instance of the right SOP class, not a clinically meaningful report.
    """
    first = evidence[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class_uid, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, generate_uid()
    ds.PatientID, ds.PatientName = first.PatientID, "PHANTOM"
    ds.Modality = "KO" if sop_class_uid == KEY_OBJECT_SELECTION else "SR"
    ds.SeriesNumber, ds.InstanceNumber = 900, 1
    for keyword in _EMPTY_TYPE_2:  # present but empty, so dciodvfy finds nothing missing
        setattr(ds, keyword, "")
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.ContentDate, ds.ContentTime = "20240101", "120000"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    references = []
    for instance in evidence:
        reference = Dataset()
        reference.ReferencedSOPClassUID = instance.SOPClassUID
        reference.ReferencedSOPInstanceUID = instance.SOPInstanceUID
        references.append(reference)
    series = Dataset()
    series.SeriesInstanceUID, series.ReferencedSOPSequence = first.SeriesInstanceUID, references
    study = Dataset()
    study.StudyInstanceUID, study.ReferencedSeriesSequence = first.StudyInstanceUID, [series]
    ds.CurrentRequestedProcedureEvidenceSequence = [study]
    item = Dataset()
    if sop_class_uid == KEY_OBJECT_SELECTION:
        ds.ConceptNameCodeSequence = [_code("113000", "DCM", "Of Interest")]
        item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
        item.ReferencedSOPSequence = references[:1]
    else:
        ds.ConceptNameCodeSequence = [_code("126000", "DCM", "Imaging Measurement Report")]
        ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
        ds.PerformedProcedureCodeSequence = []
        item.RelationshipType, item.ValueType = "HAS CONCEPT MOD", "CODE"
        item.ConceptNameCodeSequence = [_code("121049", "DCM", "Language of Content Item and Descendants")]
        item.ConceptCodeSequence = [_code("en-US", "RFC5646", "English (United States)")]
    ds.ContentSequence = [item]
    return ds


@pytest.fixture
def mr_datasets() -> list[FileDataset]:
    return mr_series(np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16))


@pytest.fixture
def mr_files(tmp_path: Path, mr_datasets: list[FileDataset]) -> list[Path]:
    return write_series(mr_datasets, tmp_path / "mr")


@pytest.fixture
def report_files(tmp_path: Path, mr_datasets: list[FileDataset]) -> list[Path]:
    """A Comprehensive 3D SR and a Key Object Selection about the MR series."""
    paths = []
    for index, sop_class in enumerate((COMPREHENSIVE_3D_SR, KEY_OBJECT_SELECTION)):
        path = tmp_path / "reports" / f"{index}.dcm"
        path.parent.mkdir(exist_ok=True)
        structured_document(mr_datasets, sop_class).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def uids_of(files: Sequence[Path]) -> set[str]:
    return {str(pydicom.dcmread(path).SOPInstanceUID) for path in files}


def port_accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.peers
def test_storescp_stores_mr_and_counts_each_reception(storescp_pacs: StartPacs, mr_files: list[Path]) -> None:
    pacs = storescp_pacs()
    sent = storescu(pacs.port, mr_files, called_ae=pacs.ae_title)
    assert sent.returncode == 0, sent.stderr
    assert pacs.received_uids() == uids_of(mr_files)
    assert set(pacs.reception_counts().values()) == {1}

    again = storescu(pacs.port, mr_files[:1], called_ae=pacs.ae_title)
    assert again.returncode == 0, again.stderr
    assert len(pacs.received_files()) == len(mr_files)  # overwritten on disk ...
    assert (
        pacs.reception_counts()[str(pydicom.dcmread(mr_files[0]).SOPInstanceUID)] == 2
    )  # ... counted in the log

    pacs.stop()
    assert not port_accepts(pacs.port)


@pytest.mark.peers
def test_storescp_accepts_comprehensive_3d_sr_and_key_object_selection(
    storescp_pacs: StartPacs, report_files: list[Path]
) -> None:
    pacs = storescp_pacs()
    sent = dcmsend(pacs.port, report_files, called_ae=pacs.ae_title)
    assert sent.returncode == 0, sent.stderr
    assert pacs.wait_for_uids(uids_of(report_files), timeout=5) == uids_of(report_files)
    classes = {str(pydicom.dcmread(path).SOPClassUID) for path in pacs.received_files()}
    assert classes == {COMPREHENSIVE_3D_SR, KEY_OBJECT_SELECTION}


@pytest.mark.peers
def test_storescp_refuse_rejects_every_association(storescp_pacs: StartPacs, mr_files: list[Path]) -> None:
    pacs = storescp_pacs(refuse=True)
    sent = storescu(pacs.port, mr_files, called_ae=pacs.ae_title)
    assert sent.returncode != 0
    assert "Association Rejected" in sent.stderr
    assert "Rejected Permanent" in sent.stderr
    assert pacs.received_files() == []


@pytest.mark.peers
@pytest.mark.parametrize("fault", ["abort_after", "abort_during"])
def test_storescp_abort_options_abort_and_write_nothing(
    storescp_pacs: StartPacs, mr_files: list[Path], fault: str
) -> None:
    """DCMTK 3.6.7 aborts *before* saving under --abort-after as well: no file, no logged store."""
    pacs = storescp_pacs(**{fault: True})
    sent = storescu(pacs.port, mr_files[:1], called_ae=pacs.ae_title)
    assert sent.returncode != 0
    assert "Peer aborted Association" in sent.stderr
    assert "Received Store Request" in pacs.log_text()
    assert pacs.received_files() == []
    assert not pacs.reception_counts()


@pytest.mark.peers
def test_storescp_sleep_during_times_out_an_impatient_sender_and_keeps_nothing(
    storescp_pacs: StartPacs, mr_files: list[Path]
) -> None:
    """A slow PACS: the patient sender gets Success late; the impatient one a timeout, and no file.

    storescp deletes a file whose answer it could not send, so a timed-out store leaves nothing.
    """
    instance = pydicom.dcmread(mr_files[0])
    uid = str(instance.SOPInstanceUID)
    pacs = storescp_pacs(sleep_during_s=1)
    assert c_store(pacs, instance, dimse_timeout=0.5) is None  # no answer in time: pynetdicom aborted
    deadline = time.monotonic() + 10
    while "Store SCP Failed" not in pacs.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Store SCP Failed" in pacs.log_text()
    assert pacs.received_files() == []
    assert not pacs.reception_counts()

    assert c_store(pacs, instance, dimse_timeout=10) == 0x0000
    assert pacs.received_uids() == {uid}
    assert pacs.reception_counts() == {uid: 1}


def c_store(pacs: StorescpPacs, instance: Dataset, dimse_timeout: float) -> int | None:
    """Status of one C-STORE from pynetdicom (as qcgate sends), or None when no answer came."""
    ae = AE(ae_title="QCGATE")
    ae.add_requested_context(instance.SOPClassUID, instance.file_meta.TransferSyntaxUID)
    ae.dimse_timeout = dimse_timeout
    assoc = ae.associate("127.0.0.1", pacs.port, ae_title=pacs.ae_title)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(instance)
    finally:
        if assoc.is_established:
            assoc.release()
    return int(status.Status) if "Status" in status else None


@pytest.mark.peers
def test_orthanc_stores_mr_and_sr_from_dcmtk(
    orthanc: OrthancPeer, mr_files: list[Path], report_files: list[Path]
) -> None:
    assert orthanc.echo().returncode == 0
    sent = storescu(orthanc.dicom_port, mr_files, called_ae=orthanc.ae_title)
    assert sent.returncode == 0, sent.stderr
    sr = report_files[:1]
    sent = dcmsend(orthanc.dicom_port, sr, called_ae=orthanc.ae_title)
    assert sent.returncode == 0, sent.stderr

    study = orthanc.client.find_study(str(pydicom.dcmread(mr_files[0]).StudyInstanceUID))
    assert study is not None
    assert study in orthanc.client.studies()
    assert len(orthanc.client.series_of(study)) == 2  # the MR series and the SR series
    assert orthanc.client.sop_instance_uids() == uids_of(mr_files) | uids_of(sr)
    sr_instance = next(
        instance
        for instance in orthanc.client.instances()
        if orthanc.client.instance_tags(instance)["SOPClassUID"] == COMPREHENSIVE_3D_SR
    )
    assert orthanc.client.instance_tags(sr_instance)["Modality"] == "SR"

    again = dcmsend(orthanc.dicom_port, sr, called_ae=orthanc.ae_title)
    assert again.returncode == 0, again.stderr  # a resend succeeds ...
    assert len(orthanc.client.instances()) == len(mr_files) + 1  # ... and is not stored twice
    assert orthanc.client.find_study("1.2.3.4.5.6.7.8.9") is None


@pytest.mark.peers
def test_orthanc_rejects_unknown_calling_and_wrong_called_ae(
    start_orthanc: Callable[..., OrthancPeer], mr_files: list[Path]
) -> None:
    orthanc = start_orthanc(allow_unknown_aes=False, known_modalities={"QCGATE": ("127.0.0.1", 11112)})
    stranger = storescu(orthanc.dicom_port, mr_files[:1], called_ae=orthanc.ae_title, calling_ae="STRANGER")
    assert stranger.returncode != 0
    assert "Calling AE Title Not Recognized" in stranger.stderr
    misaddressed = storescu(orthanc.dicom_port, mr_files[:1], called_ae="NOT-ORTHANC", calling_ae="QCGATE")
    assert misaddressed.returncode != 0
    assert "Called AE Title Not Recognized" in misaddressed.stderr
    known = storescu(orthanc.dicom_port, mr_files[:1], called_ae=orthanc.ae_title, calling_ae="QCGATE")
    assert known.returncode == 0, known.stderr
    assert orthanc.client.sop_instance_uids() == uids_of(mr_files[:1])

    orthanc.stop()
    assert not port_accepts(orthanc.dicom_port)
    assert not port_accepts(orthanc.http_port)


def post(
    receiver: WebhookReceiver, body: bytes, headers: dict[str, str], timeout: float = 5
) -> httpx.Response:
    return httpx.post(receiver.url, content=body, headers=headers, timeout=timeout)


def test_signature_scheme_matches_its_documented_test_vector() -> None:
    """A fixed vector the delivery code can copy into its own tests."""
    message = b"1700000000." + b'{"event":"series.scored"}'
    expected = hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()
    assert sign("s3cret", "1700000000", b'{"event":"series.scored"}') == f"sha256={expected}"
    assert expected == "e9e2ff4426efd484e2de7ad6a7ee668b03c7c07f6a5e8a98316b4766f5f810c8"


def test_webhook_receiver_accepts_a_correctly_signed_post(webhook_receiver: WebhookReceiver) -> None:
    body = json.dumps({"event": "series.scored", "series_uid": "1.2.3"}).encode()
    response = post(webhook_receiver, body, signed_headers(webhook_receiver.secret, body, "delivery-1"))
    assert response.status_code == 204
    [delivery] = webhook_receiver.deliveries
    assert delivery.delivery_id == "delivery-1"
    assert delivery.json() == {"event": "series.scored", "series_uid": "1.2.3"}
    assert webhook_receiver.rejected == []


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"X-QCGate-Signature": "sha256=" + "0" * 64}, "bad signature"),
        ({"X-QCGate-Timestamp": "1000000000"}, "stale timestamp"),
        ({"X-QCGate-Timestamp": "soon"}, "malformed timestamp"),
        ({"X-QCGate-Delivery": ""}, "missing header"),
    ],
)
def test_webhook_receiver_rejects_a_bad_signature(
    webhook_receiver: WebhookReceiver, tamper: dict[str, str], reason: str
) -> None:
    body = b'{"event": "series.scored"}'
    headers = {**signed_headers(webhook_receiver.secret, body, "delivery-1"), **tamper}
    assert post(webhook_receiver, body, headers).status_code == 401
    [rejected] = webhook_receiver.rejected
    assert rejected.outcome == f"rejected: {reason}"
    assert webhook_receiver.deliveries == []


def test_webhook_receiver_rejects_a_body_signed_with_another_secret(
    webhook_receiver: WebhookReceiver,
) -> None:
    body = b'{"event": "series.scored"}'
    assert post(webhook_receiver, body, signed_headers("wrong", body, "delivery-1")).status_code == 401
    assert [request.outcome for request in webhook_receiver.requests] == ["rejected: bad signature"]


def test_webhook_receiver_fails_then_drops_then_accepts(webhook_receiver: WebhookReceiver) -> None:
    body = b'{"event": "series.scored"}'
    webhook_receiver.fail_next(2, status=503)
    webhook_receiver.drop_next(1)
    statuses = []
    for _ in range(2):
        statuses.append(
            post(webhook_receiver, body, signed_headers(webhook_receiver.secret, body, "d")).status_code
        )
    with pytest.raises(httpx.RemoteProtocolError):
        post(webhook_receiver, body, signed_headers(webhook_receiver.secret, body, "d"))
    statuses.append(
        post(webhook_receiver, body, signed_headers(webhook_receiver.secret, body, "d")).status_code
    )
    assert statuses == [503, 503, 204]
    outcomes = [request.outcome for request in webhook_receiver.requests]
    assert outcomes == ["failed 503", "failed 503", "dropped", "accepted"]
    assert len(webhook_receiver.deliveries) == 1


def test_webhook_receiver_stall_outlasts_the_sender_but_records_the_delivery(
    webhook_receiver: WebhookReceiver,
) -> None:
    body = b'{"event": "series.scored"}'
    webhook_receiver.stall_next(1, seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        post(webhook_receiver, body, signed_headers(webhook_receiver.secret, body, "d-1"), timeout=0.5)
    retry = post(webhook_receiver, body, signed_headers(webhook_receiver.secret, body, "d-1"))
    assert retry.status_code == 204
    assert [delivery.delivery_id for delivery in webhook_receiver.wait_for_deliveries(2, timeout=5)] == [
        "d-1",
        "d-1",
    ]
    assert [request.outcome for request in webhook_receiver.requests] == ["stalled", "accepted"]


@pytest.mark.parametrize("module", [storescp_peer, orthanc_peer, webhook_module], ids=lambda m: m.__name__)
def test_public_names_are_exported(module: ModuleType) -> None:
    """``__all__`` names exactly what the module itself defines without a leading underscore."""
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (
            getattr(value, "__module__", None) == module.__name__
            or (name.isupper() and isinstance(value, str))
        )
    }
    assert sorted(module.__all__) == sorted(defined)


def test_a_missing_peer_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    require_peer("storescp", True)  # present: the test goes on
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="storescp is missing: install dcmtk"):
        require_peer("storescp", False, "install dcmtk")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"storescp is missing: install dcmtk \(CI=true"):
        require_peer("storescp", False, "install dcmtk")
