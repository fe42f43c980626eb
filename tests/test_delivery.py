"""Results out end to end: DCMTK storescu -> qcgate serve -> SR kept, routed and delivered to DCMTK
storescp PACS peers, through failures, dead letters, manual retries and lost responses."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
import redis
import yaml
from pydicom.uid import Comprehensive3DSRStorage, KeyObjectSelectionDocumentStorage, RLELossless

from qcgate.harness.peers import QCGate, free_port, storescu
from qcgate.harness.storescp_peer import StorescpPacs
from qcgate.synthetic.demo_series import noisy_phantom
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series
from tests.dicom_proxy import DicomProxy, DropMode

pytestmark = pytest.mark.peers

FAST_RETRIES = {
    "delivery_max_attempts": 3,
    "delivery_retry_base_s": 0.2,
    "delivery_retry_max_s": 1.0,
    "delivery_timeout_s": 3.0,
}
# snrd of the phantom: ~36 at 2 % noise, ~3.8 at 20 %; these limits make them pass and fail.
SPLIT_THRESHOLDS = {"snrd": {"warn": 20.0, "fail": 15.0, "source": "test"}}


def start_with(
    start_qcgate: Callable[..., QCGate],
    directory: Path,
    *commands: list[str],
    environment: dict[str, str] | None = None,
    **settings: Any,
) -> QCGate:
    """qcgate (``serve`` unless ``commands``) with ``settings`` (destinations, rules...) in a YAML file,
    as a site would write them, and ``environment`` as ``QCGATE_*`` variables."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "qcgate.yaml"
    config.write_text(yaml.safe_dump({**FAST_RETRIES, **settings}))
    return start_qcgate(*commands, config=str(config), **(environment or {}))


def destination(pacs: StorescpPacs | DicomProxy | int, ae_title: str = "PACS") -> dict[str, Any]:
    port = pacs if isinstance(pacs, int) else pacs.port
    return {"ae_title": ae_title, "host": "127.0.0.1", "port": port}


def series_files(
    directory: Path, description: str, *, noise: float = 0.02, seed: int = 3, compress: str | None = None
) -> tuple[str, list[Path]]:
    """A phantom MR series with its own description and noise level; (SeriesInstanceUID, files)."""
    datasets = mr_series_datasets(noisy_phantom((8, 64, 64), noise, seed), series_description=description)
    if compress is not None:
        for dataset in datasets:
            dataset.compress(compress)
    return str(datasets[0].SeriesInstanceUID), write_series(datasets, directory)


def sop_uids(files: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}


def dataset_part(data: bytes | Path) -> bytes:
    """The encoded dataset after the file meta: what went over the wire (each side writes its own meta)."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    assert raw[128:136] == b"DICM\x02\x00\x00\x00", "Part 10 with (0002,0000) first"
    return raw[144 + int.from_bytes(raw[140:144], "little") :]


def deliveries(gate: QCGate, **params: Any) -> list[dict[str, Any]]:
    response = gate.get("/api/v1/deliveries", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def wait_for_deliveries(
    gate: QCGate,
    series_uid: str,
    count: int,
    states: tuple[str, ...] = ("delivered",),
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """The series' deliveries once ``count`` of them exist and all are in ``states``, oldest first."""
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = deliveries(gate, series=series_uid)
        if len(items) >= count and all(item["state"] in states for item in items):
            return sorted(items, key=lambda item: item["id"])
        time.sleep(0.2)
    raise TimeoutError(f"deliveries not {states}: {items}\nlog:\n{gate.log_text()[-6000:]}")


def metric(gate: QCGate, name: str, **labels: str) -> float:
    """One sample from /metrics, labels matched in any order; 0 when the series does not exist."""
    for line in gate.get("/metrics").text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(key) == value for key, value in labels.items()):
                return float(match.group(2))
    return 0.0


def test_sr_is_kept_listed_downloaded_delivered_and_superseded_by_a_rescore(
    start_qcgate: Callable[..., QCGate], storescp_pacs: Callable[..., StorescpPacs], tmp_path: Path
) -> None:
    pacs = storescp_pacs(ae_title="ARCHIVE")
    gate = start_with(
        start_qcgate,
        tmp_path / "config",
        destinations={"ARCHIVE": destination(pacs, "ARCHIVE"), "NOBODY": destination(free_port())},
        routing_rules=[{"name": "archive-every-report", "send_sr": ["ARCHIVE"]}],
    )
    series_uid, files = series_files(tmp_path / "series", "T1 MPRAGE")
    assert storescu(gate.dicom_port, files).returncode == 0
    body = gate.wait_for_series(series_uid)
    (first_delivery,) = wait_for_deliveries(gate, series_uid, 1)
    assert first_delivery["action"] == "send_sr"
    assert first_delivery["target"] == "ARCHIVE"
    assert first_delivery["rule"] == "archive-every-report"
    assert first_delivery["attempts"] == 1

    (report,) = gate.get(f"/api/v1/series/{series_uid}/reports").json()["items"]
    assert report["kind"] == "sr"
    assert report["sop_class_uid"] == Comprehensive3DSRStorage
    assert report["evaluated_series_instance_uid"] == series_uid
    assert report["study_instance_uid"] == body["study_instance_uid"]
    assert report["predecessor_sop_instance_uid"] is None
    assert first_delivery["report_sop_instance_uid"] == report["sop_instance_uid"]
    assert gate.get(f"/api/v1/reports/{report['sop_instance_uid']}").json() == report
    download = gate.get(report["href"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/dicom"
    sr = pydicom.dcmread(pydicom.filebase.DicomBytesIO(download.content))
    assert sr.SOPClassUID == Comprehensive3DSRStorage
    assert sr.SOPInstanceUID == report["sop_instance_uid"]
    assert sr.StudyInstanceUID == body["study_instance_uid"]
    assert sr.SeriesInstanceUID == report["series_instance_uid"] != series_uid

    pacs.wait_for_uids([report["sop_instance_uid"]])
    (received,) = pacs.received_files()
    assert dataset_part(received) == dataset_part(download.content), "the PACS got other bytes than we keep"

    assert gate.post(f"/api/v1/series/{series_uid}/rescore").status_code == 202
    gate.wait_for_series(series_uid, min_assessments=2)
    second_delivery = wait_for_deliveries(gate, series_uid, 2)[1]
    first, second = gate.get(f"/api/v1/series/{series_uid}/reports").json()["items"]
    assert first == report
    assert second["predecessor_sop_instance_uid"] == first["sop_instance_uid"]
    assert second["series_instance_uid"] == first["series_instance_uid"], "versions share the SR series"
    assert second["instance_number"] == 2
    assert second_delivery["report_sop_instance_uid"] == second["sop_instance_uid"]
    newer = pydicom.dcmread(pydicom.filebase.DicomBytesIO(gate.get(second["href"]).content))
    (predecessor,) = newer.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert predecessor.ReferencedSOPInstanceUID == first["sop_instance_uid"]
    pacs.wait_for_uids([first["sop_instance_uid"], second["sop_instance_uid"]])

    labels = {"action": "send_sr", "target": "ARCHIVE"}
    assert metric(gate, "qcgate_delivery_attempts_total", outcome="delivered", **labels) == 2
    assert metric(gate, "qcgate_reports_issued_total", kind="sr") == 2
    assert metric(gate, "qcgate_delivery_seconds_count", action="send_sr") == 2
    assert metric(gate, "qcgate_result_to_delivery_seconds_count", action="send_sr") == 2
    assert series_uid not in gate.get("/metrics").text
    assert report["sop_instance_uid"] not in gate.get("/metrics").text

    listed = gate.get("/api/v1/destinations").json()
    assert {d["name"]: d["ae_title"] for d in listed} == {"ARCHIVE": "ARCHIVE", "NOBODY": "PACS"}
    echo = gate.post("/api/v1/destinations/ARCHIVE/echo")
    assert echo.status_code == 200
    assert echo.json()["status"] == 0
    unreachable = gate.post("/api/v1/destinations/NOBODY/echo")
    assert unreachable.status_code == 502
    assert unreachable.headers["content-type"] == "application/problem+json"
    assert unreachable.json()["error"] == "PeerUnreachable"
    assert "destination ARCHIVE answers C-ECHO" in gate.log_text()
    assert "destination NOBODY does not answer C-ECHO" in gate.log_text()

    for path, status in (
        ("/api/v1/reports/1.2.3.999", 404),
        ("/api/v1/reports/1.2.3.999/file", 404),
        ("/api/v1/series/1.2.3.999/reports", 404),
        ("/api/v1/reports/not-a-uid", 422),
        ("/api/v1/deliveries/999999", 404),
        ("/api/v1/deliveries?state=lost", 422),
        ("/api/v1/deliveries?cursor=!!", 400),
        ("/api/v1/deliveries?series=1.2.3.999", 404),
    ):
        response = gate.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"] == "application/problem+json"
    assert gate.post("/api/v1/destinations/ELSEWHERE/echo").status_code == 404
    paths = gate.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/series/{series_uid}/reports",
        "/api/v1/reports/{sop_uid}",
        "/api/v1/reports/{sop_uid}/file",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{job_id}",
        "/api/v1/deliveries/{job_id}/retry",
        "/api/v1/destinations",
        "/api/v1/destinations/{name}/echo",
    } <= set(paths)


def test_flags_metrics_and_descriptions_route_to_their_destinations(
    start_qcgate: Callable[..., QCGate], storescp_pacs: Callable[..., StorescpPacs], tmp_path: Path
) -> None:
    archive, review, low_snr = (storescp_pacs(ae_title=name) for name in ("ARCHIVE", "REVIEW", "LOWSNR"))
    gate = start_with(
        start_qcgate,
        tmp_path / "config",
        thresholds=SPLIT_THRESHOLDS,
        kos_on_fail=True,
        destinations={
            "ARCHIVE": destination(archive, "ARCHIVE"),
            "REVIEW": destination(review, "REVIEW"),
            "LOWSNR": destination(low_snr, "LOWSNR"),
        },
        routing_rules=[
            {"name": "pass-to-archive", "match": {"flag": ["pass"]}, "send_sr": ["ARCHIVE"]},
            {
                "name": "fail-to-review",
                "match": {"flag": ["fail"]},
                "send_sr": ["REVIEW"],
                "send_kos": ["REVIEW"],
            },
            {"name": "t1-forward", "match": {"series_description": "(?i)^t1"}, "forward": ["ARCHIVE"]},
            {"name": "noisy", "match": {"metrics": {"snrd": {"below": 10}}}, "send_sr": ["LOWSNR"]},
            {"name": "kos-only-on-fail", "match": {"flag": ["pass"]}, "send_kos": ["ARCHIVE"]},
        ],
    )
    clean_uid, clean_files = series_files(tmp_path / "clean", "T1 MPRAGE", compress=RLELossless)
    noisy_uid, noisy_files = series_files(tmp_path / "noisy", "T2 FLAIR", noise=0.2, seed=4)
    assert storescu(gate.dicom_port, clean_files, extra=["-xr"]).returncode == 0  # propose RLE
    assert storescu(gate.dicom_port, noisy_files).returncode == 0
    assert gate.wait_for_series(clean_uid)["flag"] == "pass"
    assert gate.wait_for_series(noisy_uid)["flag"] == "fail"

    clean_jobs = wait_for_deliveries(gate, clean_uid, 2)
    assert {(j["action"], j["target"], j["rule"]) for j in clean_jobs} == {
        ("send_sr", "ARCHIVE", "pass-to-archive"),
        ("forward", "ARCHIVE", "t1-forward"),
    }, "no KOS for a passing series, so its send_kos is not routed"
    noisy_jobs = wait_for_deliveries(gate, noisy_uid, 3)
    assert {(j["action"], j["target"], j["rule"]) for j in noisy_jobs} == {
        ("send_sr", "REVIEW", "fail-to-review"),
        ("send_kos", "REVIEW", "fail-to-review"),
        ("send_sr", "LOWSNR", "noisy"),
    }

    reports = {
        uid: gate.get(f"/api/v1/series/{uid}/reports").json()["items"] for uid in (clean_uid, noisy_uid)
    }
    (clean_sr,) = reports[clean_uid]
    noisy_sr, noisy_kos = reports[noisy_uid]
    assert (noisy_sr["kind"], noisy_kos["kind"]) == ("sr", "kos")
    assert noisy_kos["sop_class_uid"] == KeyObjectSelectionDocumentStorage
    kos = pydicom.dcmread(pydicom.filebase.DicomBytesIO(gate.get(noisy_kos["href"]).content))
    assert kos.ConceptNameCodeSequence[0].CodeValue == "113010"  # Quality Issue, never 113001

    forwarded = sop_uids(clean_files)
    assert archive.wait_for_uids({clean_sr["sop_instance_uid"], *forwarded}) == {
        clean_sr["sop_instance_uid"],
        *forwarded,
    }
    assert archive.received_uids() == {clean_sr["sop_instance_uid"], *forwarded}
    assert set(archive.reception_counts().values()) == {1}, "every instance forwarded once"
    as_sent = {str(pydicom.dcmread(p).SOPInstanceUID): dataset_part(p) for p in clean_files}
    for path in archive.received_files():
        received = pydicom.dcmread(path)
        if received.SOPInstanceUID in as_sent:
            assert received.file_meta.TransferSyntaxUID == RLELossless, "forwarded as stored"
            assert dataset_part(path) == as_sent[received.SOPInstanceUID]
    assert review.wait_for_uids({noisy_sr["sop_instance_uid"], noisy_kos["sop_instance_uid"]})
    assert review.received_uids() == {noisy_sr["sop_instance_uid"], noisy_kos["sop_instance_uid"]}
    assert low_snr.received_uids() == {noisy_sr["sop_instance_uid"]}


def test_refused_deliveries_die_then_a_manual_retry_delivers(
    start_qcgate: Callable[..., QCGate], storescp_pacs: Callable[..., StorescpPacs], tmp_path: Path
) -> None:
    refusing = storescp_pacs(refuse=True)
    gate = start_with(
        start_qcgate,
        tmp_path / "config",
        destinations={"ARCHIVE": destination(refusing)},
        routing_rules=[{"name": "archive", "send_sr": ["ARCHIVE"], "forward": ["ARCHIVE"]}],
    )
    series_uid, files = series_files(tmp_path / "series", "T1 MPRAGE")
    assert storescu(gate.dicom_port, files).returncode == 0
    dead = wait_for_deliveries(gate, series_uid, 2, states=("dead",))
    for job in dead:
        assert job["attempts"] == 3
        assert job["max_attempts"] == 3
        assert job["next_attempt_at"] is None
        assert job["last_error"].startswith("attempt 3: AssociationRejected: ")
        assert "rejected the association (Rejected (Permanent)" in job["last_error"]
    assert [j["id"] for j in deliveries(gate, state="dead")] == [j["id"] for j in reversed(dead)]
    assert deliveries(gate, state="delivered") == []
    labels = {"action": "send_sr", "target": "ARCHIVE"}
    assert metric(gate, "qcgate_delivery_attempts_total", outcome="failed", **labels) == 3
    assert metric(gate, "qcgate_delivery_retries_total", **labels) == 2
    assert metric(gate, "qcgate_delivery_dead_letters_total", **labels) == 1

    refusing.stop()
    accepting = storescp_pacs(port=refusing.port)
    for job in dead:
        retried = gate.post(f"/api/v1/deliveries/{job['id']}/retry")
        assert retried.status_code == 202
        assert retried.json()["state"] == "pending"
        assert retried.json()["manual_retries"] == 1
    delivered = wait_for_deliveries(gate, series_uid, 2)
    assert [job["attempts"] for job in delivered] == [1, 1], "a manual retry starts a fresh round"
    sr_uid = delivered[0]["report_sop_instance_uid"]
    assert accepting.wait_for_uids({sr_uid, *sop_uids(files)})
    again = gate.post(f"/api/v1/deliveries/{dead[0]['id']}/retry")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert gate.post("/api/v1/deliveries/999999/retry").status_code == 404


@pytest.mark.parametrize("mode", [DropMode.CLOSE, DropMode.STALL])
def test_a_lost_response_is_retried_and_the_pacs_keeps_one_copy(
    mode: DropMode,
    start_qcgate: Callable[..., QCGate],
    storescp_pacs: Callable[..., StorescpPacs],
    tmp_path: Path,
) -> None:
    pacs = storescp_pacs()
    with DicomProxy(pacs.port) as proxy:
        proxy.drop_store_response(1, mode=mode)
        gate = start_with(
            start_qcgate,
            tmp_path / "config",
            delivery_timeout_s=1.5,
            destinations={"ARCHIVE": destination(proxy)},
            routing_rules=[{"name": "archive", "send_sr": ["ARCHIVE"]}],
        )
        series_uid, files = series_files(tmp_path / "series", "T1 MPRAGE")
        assert storescu(gate.dicom_port, files).returncode == 0
        (job,) = wait_for_deliveries(gate, series_uid, 1)
    sr_uid = job["report_sop_instance_uid"]
    lost = proxy.dropped()
    assert [response.sop_instance_uid for response in lost] == [sr_uid]
    assert lost[0].status == 0x0000, "the PACS had stored it when its answer was lost"
    assert job["attempts"] == 2
    expected = "AssociationAborted" if mode is DropMode.CLOSE else "DeliveryTimeout"
    assert job["last_error"].startswith(f"attempt 1: {expected}: ")
    assert pacs.reception_counts()[sr_uid] == 2, "the retry resent it"
    assert pacs.received_uids() == {sr_uid}, "same SOP Instance UID: one copy at the PACS"
    (kept,) = pacs.received_files()
    assert dataset_part(kept) == dataset_part(gate.get(f"/api/v1/reports/{sr_uid}/file").content)


def test_scale_path_relays_and_delivers_over_redis_and_postgresql(
    start_qcgate: Callable[..., QCGate],
    storescp_pacs: Callable[..., StorescpPacs],
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Receiver (with the relay), API and worker apart: the retry after a lost answer goes through the
    relay in the scp process and the delivery queue in Redis."""
    pacs = storescp_pacs()
    with DicomProxy(pacs.port) as proxy:
        proxy.drop_store_response(1, mode=DropMode.CLOSE)
        gate = start_with(
            start_qcgate,
            tmp_path / "config",
            ["scp"],
            ["api"],
            ["worker"],
            environment={"database_url": postgres_url, "broker_url": redis_url},
            destinations={"ARCHIVE": destination(proxy)},
            routing_rules=[{"name": "archive", "send_sr": ["ARCHIVE"]}],
        )
        series_uid, files = series_files(tmp_path / "series", "T1 MPRAGE")
        assert storescu(gate.dicom_port, files).returncode == 0
        (job,) = wait_for_deliveries(gate, series_uid, 1)
    assert job["attempts"] == 2
    assert pacs.received_uids() == {job["report_sop_instance_uid"]}
    assert redis.Redis.from_url(redis_url).llen("qcgate.delivery") == 0, "a delivery task was left behind"
