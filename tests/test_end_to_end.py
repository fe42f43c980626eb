"""The embedded default end to end: DCMTK storescu -> qcgate serve -> worker -> REST and /metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pydicom
import pytest
from pynetdicom.dsutils import split_dataset

from qcgate.contract.manifest import default_manifest_path, load_manifest
from qcgate.harness.peers import DCMTK_ECHOSCU, QCGate, dcmtk_env, storescu
from qcgate.synthetic.demo_series import write_phantom_series

pytestmark = pytest.mark.peers

CLASSIC_DIRECTIONS = {
    "snr": True,
    "snrd": True,
    "cnr": True,
    "cjv": False,
    "efc": False,
    "fber": True,
    "gsr": False,
}


def shipped_directions() -> dict[str, bool]:
    """The learned models a worker loads: those of the shipped manifest, if one ships."""
    path = default_manifest_path()
    if not path.is_file():
        return {}
    return {entry.name: entry.output.higher_is_better for entry in load_manifest(path).models}


def dataset_part(path: Path) -> bytes:
    """The encoded dataset after the file meta: what the sender sent (the meta is the receiver's)."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def metric_value(metrics_text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", metrics_text, re.MULTILINE)
    assert match, f"{name}{labels} missing from /metrics"
    return float(match.group(1))


def test_series_from_dcmtk_is_scored_and_visible_everywhere(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    gate = start_qcgate()
    echo = subprocess.run(
        [DCMTK_ECHOSCU, "-aec", "QCGATE", "127.0.0.1", str(gate.dicom_port)], env=dcmtk_env(), check=False
    )
    assert echo.returncode == 0
    series_uid, files = write_phantom_series(tmp_path / "series")
    sent = storescu(gate.dicom_port, files, calling_ae="MRSCANNER1")
    assert sent.returncode == 0, sent.stderr

    body = gate.wait_for_series(series_uid)
    assert body["instances"] == len(files)
    assert body["calling_ae"] == "MRSCANNER1"
    assert body["modality"] == "MR"
    learned = shipped_directions()
    directions = {name: metric["higher_is_better"] for name, metric in body["metrics"].items()}
    assert directions == CLASSIC_DIRECTIONS | learned
    for name in learned:
        assert 0.0 <= body["metrics"][name]["quality"] <= 100.0, "a shipped model is uncalibrated"
    assert {a["name"] for a in body["provenance"]["algorithms"]} == set(learned)
    assert all(m["value"] == m["value"] for m in body["metrics"].values()), "a metric is NaN"
    assert body["flag"] in ("pass", "warn", "fail")
    assert body["provenance"]["metric_versions"]["classic"]
    assert body["provenance"]["thresholds"] == {}, "per-metric limits are the site's, none by default"
    assert set(body["provenance"]["verdict"]["limits"]) >= {"quality_warn", "severity_fail"}
    assert 0.0 <= body["quality"] <= 100.0
    assert isinstance(body["findings"], list)
    assert body["timings"]["receive_to_result_s"] > 0
    per_slice = body["stacks"][0]["metrics"]["snr"]["per_slice"]
    assert len(per_slice) == len(files)

    chart = gate.get(f"/api/v1/series/{series_uid}/slices.svg", params={"metric": "snr"})
    assert chart.headers["content-type"] == "image/svg+xml"
    polyline = ElementTree.fromstring(chart.text).find("{http://www.w3.org/2000/svg}polyline")
    assert polyline is not None
    assert len(polyline.attrib["points"].split()) == sum(v is not None for v in per_slice)
    assert gate.get(f"/api/v1/series/{series_uid}/slices.svg", params={"metric": "cjv"}).status_code == 404

    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    study = gate.get(f"/api/v1/studies/{study_uid}").json()
    assert [s["series_instance_uid"] for s in study["series"]] == [series_uid]

    spooled = sorted((gate.data_dir / "spool" / study_uid / series_uid).glob("*.dcm"))
    assert len(spooled) == len(files)
    assert {dataset_part(p) for p in spooled} == {dataset_part(f) for f in files}, (
        "bytes not kept as received"
    )

    metrics_text = gate.get("/metrics").text
    assert metric_value(metrics_text, "qcgate_instances_received_total") == len(files)
    station = '{station="other"}'  # the phantom's StationName is not among metric_stations (none by default)
    flag_and_station = f'{{flag="{body["flag"]}",station="other"}}'
    assert metric_value(metrics_text, "qcgate_series_assessed_total", flag_and_station) == 1
    assert metric_value(metrics_text, "qcgate_assessment_seconds_count") == 1
    assert metric_value(metrics_text, "qcgate_series_quality_count", station) == 1
    assert metric_value(metrics_text, "qcgate_series_quality_sum", station) == pytest.approx(body["quality"])
    assert metric_value(metrics_text, "qcgate_queue_depth") == 0
    assert series_uid not in metrics_text


def test_late_instance_requeues_and_the_newest_assessment_is_current(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    gate = start_qcgate()
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(8, 96, 96))
    first, late = files[:-1], files[-1:]
    assert storescu(gate.dicom_port, first).returncode == 0
    before = gate.wait_for_series(series_uid)
    assert before["instances"] == len(first)
    assert storescu(gate.dicom_port, late).returncode == 0
    after = gate.wait_for_series(series_uid, min_assessments=2)
    assert after["instances"] == len(files)
    assert after["assessments"] == 2
    assert after["provenance"]["assessment_id"] > before["provenance"]["assessment_id"]
    assert after["provenance"]["revision"] > before["provenance"]["revision"]


def test_rescore_listing_and_problem_responses(start_qcgate: Callable[..., QCGate], tmp_path: Path) -> None:
    gate = start_qcgate()
    uids = []
    for index in range(3):
        uid, files = write_phantom_series(tmp_path / f"s{index}", shape=(8, 64, 64), seed=index)
        assert storescu(gate.dicom_port, files).returncode == 0
        uids.append(uid)
    for uid in uids:
        gate.wait_for_series(uid)

    first_page = gate.get("/api/v1/series", params={"limit": 2, "modality": "MR"}).json()
    assert len(first_page["items"]) == 2
    assert first_page["next_cursor"]
    second_page = gate.get("/api/v1/series", params={"limit": 2, "cursor": first_page["next_cursor"]}).json()
    listed = [s["series_instance_uid"] for s in first_page["items"] + second_page["items"]]
    assert sorted(listed) == sorted(uids)
    assert second_page["next_cursor"] is None
    assert gate.get("/api/v1/series", params={"modality": "CT"}).json()["items"] == []
    assert gate.get("/api/v1/series", params={"status": "done"}).json()["items"]

    accepted = gate.post(f"/api/v1/series/{uids[0]}/rescore")
    assert accepted.status_code == 202
    assert gate.wait_for_series(uids[0], min_assessments=2)["assessments"] == 2

    missing = gate.get("/api/v1/series/1.2.3.4.999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    assert gate.get("/api/v1/series/not-a-uid").status_code == 422
    assert gate.get("/api/v1/series", params={"status": "sideways"}).status_code == 422
    assert gate.get("/api/v1/series", params={"cursor": "!!"}).status_code == 400
    assert gate.get("/api/v1/series", params={"since": "2026-01-01T00:00:00"}).status_code == 400
    assert gate.post("/api/v1/series/1.2.3.4.999/rescore").status_code == 404


def test_bearer_tokens_guard_the_api_but_not_health(start_qcgate: Callable[..., QCGate]) -> None:
    gate = start_qcgate(api_tokens="s3cret,other")
    assert gate.get("/healthz").status_code == 200
    denied = gate.get("/api/v1/series")
    assert denied.status_code == 401
    assert denied.headers["content-type"] == "application/problem+json"
    assert gate.get("/api/v1/series", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert gate.get("/api/v1/series", headers={"Authorization": "Bearer other"}).status_code == 200


def test_dcmtk_tools_are_installed() -> None:
    assert shutil.which("/usr/bin/storescu")
    assert shutil.which(DCMTK_ECHOSCU)
