"""The response-dropping proxy proves, with real peers, the case no storescp option plays: the PACS
stored the instance, its answer was lost, the sender resent, and the PACS still holds one copy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import Comprehensive3DSRStorage, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_context
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import P_DATA_TF

from qcgate.harness.orthanc_peer import OrthancPeer
from qcgate.harness.peers import storescu
from qcgate.harness.storescp_peer import StorescpPacs
from qcgate.synthetic.dicom_series import write_series
from qcgate.synthetic.instances import MR_IMAGE_STORAGE, mr_series
from tests.dicom_proxy import DicomProxy, DropMode, StoreResponse, _store_responses_in

StartPacs = Callable[..., StorescpPacs]
SENDER_TIMEOUT_S = 2.0


@pytest.fixture
def mr_files(tmp_path: Path) -> list[Path]:
    stored = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    return write_series(mr_series(stored), tmp_path / "mr")


@pytest.fixture
def mr_datasets(mr_files: list[Path]) -> list[FileDataset]:
    """The instances as read back from their files, so they know their own encoding."""
    return [pydicom.dcmread(path) for path in mr_files]


def sr_dataset(about: Dataset) -> Dataset:
    """Just enough of a Comprehensive 3D SR for a PACS to file it (the proxy reads only the answer)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = Comprehensive3DSRStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = about.StudyInstanceUID, generate_uid()
    ds.PatientID, ds.Modality = about.PatientID, "SR"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def c_store_all(port: int, datasets: list[Dataset], called_ae: str) -> list[int | None]:
    """C-STORE each dataset on one pynetdicom association, as qcgate sends; None: no answer came.

    The first unanswered store ends the association, so later datasets are not attempted.
    """
    ae = AE(ae_title="QCGATE")
    ae.requested_contexts = [build_context(uid) for uid in sorted({ds.SOPClassUID for ds in datasets})]
    ae.dimse_timeout = SENDER_TIMEOUT_S
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    assert assoc.is_established
    statuses: list[int | None] = []
    for ds in datasets:
        answer = assoc.send_c_store(ds)
        statuses.append(int(answer.Status) if "Status" in answer else None)
        if statuses[-1] is None:
            assoc.join(timeout=5)  # pynetdicom ends the association: the peer's answer is lost for good
            assert assoc.is_aborted
            return statuses
    assoc.release()
    return statuses


def files_holding(pacs: StorescpPacs, uid: str) -> int:
    return sum(str(pydicom.dcmread(path).SOPInstanceUID) == uid for path in pacs.received_files())


def test_a_command_set_fragmented_over_pdus_is_read_as_one_c_store_rsp() -> None:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = 7
    primitive.AffectedSOPClassUID = MR_IMAGE_STORAGE
    primitive.AffectedSOPInstanceUID = "1.2.3.4.5"
    primitive.Status = 0xB000
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    pdus = []
    for data in message.encode_msg(1, max_pdu_length=40):
        pdu = P_DATA_TF()
        pdu.from_primitive(data)
        pdus.append(pdu.encode())
    assert len(pdus) > 2

    command, found = bytearray(), []
    for pdu in pdus:
        found += _store_responses_in(pdu[6:], command)
    assert found == [StoreResponse(MR_IMAGE_STORAGE, "1.2.3.4.5", 0xB000, dropped=False)]
    assert not command


@pytest.mark.peers
@pytest.mark.parametrize("mode", list(DropMode))
def test_storescp_keeps_an_instance_whose_answer_was_lost_and_one_file_after_the_resend(
    storescp_pacs: StartPacs, mr_datasets: list[FileDataset], mode: DropMode
) -> None:
    pacs = storescp_pacs()
    first, lost, last = mr_datasets
    uid = str(lost.SOPInstanceUID)
    with DicomProxy(pacs.port) as proxy:
        proxy.drop_store_response(nth=2, mode=mode)
        assert c_store_all(proxy.port, mr_datasets, pacs.ae_title) == [0x0000, None]
        assert proxy.wait_for_drop() == StoreResponse(MR_IMAGE_STORAGE, uid, 0x0000, dropped=True)
        pacs.wait_for_uids([uid])
        assert pacs.reception_counts()[uid] == 1  # stored, though the sender never heard so

        assert c_store_all(proxy.port, [lost, last], pacs.ae_title) == [0x0000, 0x0000]
    assert pacs.received_uids() == {str(ds.SOPInstanceUID) for ds in (first, lost, last)}
    assert files_holding(pacs, uid) == 1
    assert pacs.reception_counts()[uid] == 2
    assert [response.dropped for response in proxy.responses()] == [False, True, False, False]
    assert proxy.connections == 2


@pytest.mark.peers
def test_dcmtk_storescu_sees_the_lost_answer_as_a_failure(
    storescp_pacs: StartPacs, mr_files: list[Path]
) -> None:
    pacs = storescp_pacs()
    uid = str(pydicom.dcmread(mr_files[0]).SOPInstanceUID)
    with DicomProxy(pacs.port) as proxy:
        transparent = storescu(proxy.port, mr_files, called_ae=pacs.ae_title)
        assert transparent.returncode == 0, transparent.stderr
        assert not proxy.dropped()

        proxy.drop_store_response()
        lost = storescu(proxy.port, mr_files[:1], called_ae=pacs.ae_title)
        assert lost.returncode != 0
        assert "Store Failed" in lost.stderr, lost.stderr
        assert proxy.wait_for_drop().sop_instance_uid == uid

        resent = storescu(proxy.port, mr_files[:1], called_ae=pacs.ae_title)
        assert resent.returncode == 0, resent.stderr
    assert files_holding(pacs, uid) == 1
    assert pacs.reception_counts()[uid] == 3  # the transparent send, the lost answer, the resend


@pytest.mark.peers
def test_only_the_named_sop_class_loses_its_answer(
    storescp_pacs: StartPacs, mr_datasets: list[FileDataset]
) -> None:
    pacs = storescp_pacs()
    report = sr_dataset(mr_datasets[0])
    with DicomProxy(pacs.port) as proxy:
        proxy.drop_store_response(sop_class_uid=Comprehensive3DSRStorage)
        assert c_store_all(proxy.port, [*mr_datasets, report], pacs.ae_title) == [0x0000] * 3 + [None]
        assert proxy.wait_for_drop().sop_instance_uid == report.SOPInstanceUID
    assert str(report.SOPInstanceUID) in pacs.wait_for_uids([report.SOPInstanceUID])


@pytest.mark.peers
def test_orthanc_holds_one_instance_after_a_lost_answer_and_a_resend(
    orthanc: OrthancPeer, mr_datasets: list[FileDataset]
) -> None:
    instance = mr_datasets[0]
    with DicomProxy(orthanc.dicom_port) as proxy:
        proxy.drop_store_response()
        assert c_store_all(proxy.port, [instance], orthanc.ae_title) == [None]
        proxy.wait_for_drop()
        assert len(orthanc.client.wait_for_instances(1)) == 1  # Orthanc stored what the sender thinks lost
        assert c_store_all(proxy.port, [instance], orthanc.ae_title) == [0x0000]
    assert len(orthanc.client.instances()) == 1
    assert orthanc.client.sop_instance_uids() == {str(instance.SOPInstanceUID)}
