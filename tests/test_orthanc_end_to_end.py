"""Results out, end to end, into Orthanc: DCMTK storescu -> qcgate serve -> worker -> SR and forward.

Orthanc stands for the site's PACS. qcgate routes every series (send its SR and forward the images
to ORTHANC) and failed series also to a QC review storescp; the checks read what the PACS filed,
through Orthanc's REST API, against what qcgate's own REST API says it measured. A proxy that loses
the PACS's answer to the SR's C-STORE (after Orthanc stored it) makes qcgate retry, and Orthanc must
still hold exactly one SR.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import Comprehensive3DSRStorage

from qcgate.harness.orthanc_peer import OrthancPeer
from qcgate.harness.peers import QCGate, storescu
from qcgate.harness.storescp_peer import StorescpPacs
from qcgate.sr.codes import ARTIFACT_SEVERITY
from qcgate.synthetic.demo_series import write_phantom_series
from tests.dicom_proxy import DicomProxy, DropMode

pytestmark = pytest.mark.peers

PRIVATE_SCHEME = "99QCGATE"  # written out: the test reads the SR as a PACS would
IMAGE_QUALITY_RATING = ("DCM", "111029")
TERMINAL = ("delivered", "dead")
# Short waits so a retry comes within a second; the quiet period closes a series 1 s after its last image.
FAST_DELIVERY = {
    "quiet_period_s": "1",
    "delivery_retry_base_s": "0.2",
    "delivery_retry_max_s": "1",
    "delivery_max_attempts": "4",
}


def destination(ae_title: str, port: int) -> dict[str, Any]:
    return {"ae_title": ae_title, "host": "127.0.0.1", "port": port}


def start_routed_qcgate(
    start_qcgate: Callable[..., QCGate],
    destinations: dict[str, Any],
    rules: list[dict[str, Any]],
    **settings: str,
) -> QCGate:
    return start_qcgate(
        destinations=json.dumps(destinations),
        routing_rules=json.dumps(rules),
        **{**FAST_DELIVERY, **settings},
    )


def wait_for_deliveries(
    gate: QCGate, series_uid: str, count: int, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """The series' delivery jobs once ``count`` exist and every one is delivered or dead."""
    deadline = time.monotonic() + timeout
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        jobs = gate.get("/api/v1/deliveries", params={"series": series_uid}).json()["items"]
        if len(jobs) >= count and all(job["state"] in TERMINAL for job in jobs):
            return jobs
        time.sleep(0.2)
    raise TimeoutError(f"deliveries not finished in {timeout} s: {jobs}; log:\n{gate.log_text()[-5000:]}")


def content_items(dataset: pydicom.Dataset) -> Iterator[pydicom.Dataset]:
    for item in dataset.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def sr_numbers(sr: pydicom.Dataset) -> dict[tuple[str, str], float]:
    """Every NUM item's exact (FD) value by concept (scheme, code)."""
    found = {}
    for item in content_items(sr):
        if item.ValueType == "NUM":
            code = item.ConceptNameCodeSequence[0]
            found[(code.CodingSchemeDesignator, code.CodeValue)] = item.MeasuredValueSequence[
                0
            ].FloatingPointValue
    return found


def rest_numbers(series: dict[str, Any]) -> dict[tuple[str, str], float]:
    """What the SR must hold according to qcgate's REST: every value, every quality, the series verdict's
    quality as the rating, and every finding's severity."""
    expected = {(PRIVATE_SCHEME, name): metric["value"] for name, metric in series["metrics"].items()}
    qualities = {name: m["quality"] for name, m in series["metrics"].items() if m.get("quality") is not None}
    expected |= {(PRIVATE_SCHEME, f"{name}-q"): quality for name, quality in qualities.items()}
    if series.get("quality") is not None:
        expected[IMAGE_QUALITY_RATING] = series["quality"]
    expected |= {
        (PRIVATE_SCHEME, ARTIFACT_SEVERITY[f["kind"]].value): f["severity"]
        for f in series.get("findings", [])
    }
    return expected


def orthanc_file(orthanc: OrthancPeer, instance_id: str) -> pydicom.Dataset:
    response = httpx.get(f"{orthanc.base_url}/instances/{instance_id}/file", timeout=10)
    response.raise_for_status()
    return pydicom.dcmread(io.BytesIO(response.content))


def study_instances(orthanc: OrthancPeer, study_uid: str) -> dict[str, list[dict[str, Any]]]:
    """The study's instances' tags in Orthanc, grouped by Modality."""
    study = orthanc.client.find_study(study_uid)
    assert study is not None, f"Orthanc has no study {study_uid}"
    grouped: dict[str, list[dict[str, Any]]] = {}
    for series in orthanc.client.series_of(study):
        for instance in orthanc.client.instances_of(series):
            tags = orthanc.client.instance_tags(instance) | {"_orthanc_id": instance}
            grouped.setdefault(tags["Modality"], []).append(tags)
    return grouped


def study_uid_of(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def test_images_and_sr_land_in_one_study_with_the_values_qcgate_reports(
    start_qcgate: Callable[..., QCGate],
    orthanc: OrthancPeer,
    storescp_pacs: Callable[..., StorescpPacs],
    tmp_path: Path,
) -> None:
    review = storescp_pacs(ae_title="QCREVIEW")
    rules = [
        {"name": "archive", "send_sr": ["ORTHANC"], "forward": ["ORTHANC"]},
        {"name": "failures", "match": {"flag": ["fail"]}, "send_sr": ["QCREVIEW"]},
    ]
    destinations = {
        "ORTHANC": destination(orthanc.ae_title, orthanc.dicom_port),
        "QCREVIEW": destination("QCREVIEW", review.port),
    }
    gate = start_routed_qcgate(start_qcgate, destinations, rules)
    clean_uid, clean = write_phantom_series(
        tmp_path / "clean", shape=(8, 96, 96), noise_fraction=0.02, seed=1
    )
    noisy_uid, noisy = write_phantom_series(tmp_path / "noisy", shape=(8, 96, 96), noise_fraction=0.6, seed=2)
    for files in (clean, noisy):
        sent = storescu(gate.dicom_port, files, calling_ae="MRSCANNER1")
        assert sent.returncode == 0, sent.stderr

    results = {uid: gate.wait_for_series(uid) for uid in (clean_uid, noisy_uid)}
    assert results[clean_uid]["flag"] == "pass"
    assert results[noisy_uid]["flag"] == "fail"
    clean_jobs = wait_for_deliveries(gate, clean_uid, 2)
    noisy_jobs = wait_for_deliveries(gate, noisy_uid, 3)
    assert {(j["action"], j["target"], j["state"]) for j in clean_jobs} == {
        ("send_sr", "ORTHANC", "delivered"),
        ("forward", "ORTHANC", "delivered"),
    }
    assert {(j["action"], j["target"], j["rule"]) for j in noisy_jobs} >= {
        ("send_sr", "QCREVIEW", "failures")
    }
    assert all(job["state"] == "delivered" and job["attempts"] == 1 for job in noisy_jobs)

    for series_uid, files in ((clean_uid, clean), (noisy_uid, noisy)):
        (report,) = gate.get(f"/api/v1/series/{series_uid}/reports").json()["items"]
        study_uid = study_uid_of(files)
        assert report["study_instance_uid"] == study_uid
        filed = study_instances(orthanc, study_uid)
        assert set(filed) == {"MR", "SR"}
        assert {tags["SOPInstanceUID"] for tags in filed["MR"]} == {
            str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files
        }
        (sr_tags,) = filed["SR"]
        assert sr_tags["SOPClassUID"] == Comprehensive3DSRStorage
        assert sr_tags["SOPInstanceUID"] == report["sop_instance_uid"]
        assert sr_tags["StudyInstanceUID"] == study_uid
        assert sr_tags["SeriesInstanceUID"] != series_uid  # the SR is its own series in the study
        sr = orthanc_file(orthanc, sr_tags["_orthanc_id"])
        assert sr_numbers(sr) == rest_numbers(results[series_uid])

    noisy_sr = next(r for r in gate.get(f"/api/v1/series/{noisy_uid}/reports").json()["items"])
    assert review.wait_for_uids([noisy_sr["sop_instance_uid"]]) == {noisy_sr["sop_instance_uid"]}
    assert review.received_uids() == {
        noisy_sr["sop_instance_uid"]
    }  # the passing series' SR went only to Orthanc


@pytest.mark.parametrize("mode", list(DropMode))
def test_a_lost_answer_to_the_sr_is_retried_and_orthanc_holds_one_sr(
    start_qcgate: Callable[..., QCGate], orthanc: OrthancPeer, tmp_path: Path, mode: DropMode
) -> None:
    with DicomProxy(orthanc.dicom_port) as proxy:
        proxy.drop_store_response(mode=mode, sop_class_uid=Comprehensive3DSRStorage)
        rules = [{"name": "archive", "send_sr": ["ORTHANC"], "forward": ["ORTHANC"]}]
        gate = start_routed_qcgate(
            start_qcgate,
            {"ORTHANC": destination(orthanc.ae_title, proxy.port)},
            rules,
            delivery_timeout_s="3",  # the stalled answer is given up after 3 s
        )
        series_uid, files = write_phantom_series(tmp_path / "series", shape=(8, 96, 96))
        sent = storescu(gate.dicom_port, files)
        assert sent.returncode == 0, sent.stderr
        gate.wait_for_series(series_uid)
        jobs = {job["action"]: job for job in wait_for_deliveries(gate, series_uid, 2)}

    (report,) = gate.get(f"/api/v1/series/{series_uid}/reports").json()["items"]
    lost = proxy.dropped()
    assert [response.sop_instance_uid for response in lost] == [report["sop_instance_uid"]]
    assert jobs["send_sr"]["state"] == "delivered"
    assert jobs["send_sr"]["attempts"] == 2
    expected_error = "AssociationAborted" if mode is DropMode.CLOSE else "DeliveryTimeout"
    assert expected_error in jobs["send_sr"]["last_error"]
    assert jobs["forward"]["state"] == "delivered"
    assert jobs["forward"]["attempts"] == 1

    filed = study_instances(orthanc, study_uid_of(files))
    assert [tags["SOPInstanceUID"] for tags in filed["SR"]] == [report["sop_instance_uid"]]
    assert len(filed["MR"]) == len(files)
    stored_sr_answers = [r for r in proxy.responses() if r.sop_instance_uid == report["sop_instance_uid"]]
    assert [r.dropped for r in stored_sr_answers] == [True, False]  # Orthanc received it twice, kept one
