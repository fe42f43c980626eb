"""Webhooks end to end: the series result POSTed as signed JSON to a real HTTP receiver that checks the
signature, through failures, a dropped connection, a timeout, and dead letters."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from qcgate.delivery.webhooks import signature
from qcgate.harness.peers import QCGate, storescu
from qcgate.harness.webhook_receiver import WebhookReceiver, sign
from tests.test_delivery import SPLIT_THRESHOLDS, metric, series_files, start_with, wait_for_deliveries

pytestmark = pytest.mark.peers


def webhook(receiver: WebhookReceiver, **options: object) -> dict[str, object]:
    return {"url": receiver.url, "secret": receiver.secret, **options}


def test_our_signature_is_the_receivers_scheme() -> None:
    body = b'{"event":"series.assessed"}'
    assert signature("k" * 32, 1718000000, body) == sign("k" * 32, "1718000000", body)


def test_webhook_is_signed_retried_through_failures_and_idempotent_by_delivery_id(
    start_qcgate: Callable[..., QCGate], webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    webhook_receiver.fail_next(1, 503)
    webhook_receiver.drop_next(1)
    webhook_receiver.stall_next(1, 4.0)
    gate = start_with(
        start_qcgate,
        tmp_path / "config",
        delivery_max_attempts=5,
        thresholds=SPLIT_THRESHOLDS,
        webhooks={"qc-board": webhook(webhook_receiver, timeout_s=1.0)},
        routing_rules=[{"name": "tell-the-board", "match": {"flag": ["fail"]}, "webhooks": ["qc-board"]}],
    )
    series_uid, files = series_files(tmp_path / "series", "T2 FLAIR", noise=0.2)
    assert storescu(gate.dicom_port, files, calling_ae="MRSCANNER1").returncode == 0
    body = gate.wait_for_series(series_uid)
    (job,) = wait_for_deliveries(gate, series_uid, 1, timeout=90)
    assert job["action"] == "webhook"
    assert job["attempts"] == 4

    requests = webhook_receiver.requests
    assert [request.outcome for request in requests] == ["failed 503", "dropped", "stalled", "accepted"]
    assert {request.delivery_id for request in requests} == {str(job["id"])}, "one idempotency key"
    assert len({request.body for request in requests}) == 1, "every retry sends the same bytes"
    assert webhook_receiver.rejected == []
    arrived = webhook_receiver.deliveries
    assert len(arrived) == 2, "the timed-out attempt arrived too: the receiver deduplicates by delivery id"
    assert requests[-1].headers["content-type"] == "application/json"

    payload = arrived[-1].json()
    (report,) = gate.get(f"/api/v1/series/{series_uid}/reports").json()["items"]
    assert payload["event"] == "series.assessed"
    assert payload["payload_version"] == 1
    assert payload["delivery_id"] == job["id"]
    assert payload["qcgate_version"] == body["provenance"]["software_version"]
    assert payload["series"] == {
        "series_instance_uid": series_uid,
        "study_instance_uid": body["study_instance_uid"],
        "modality": "MR",
        "station_name": body["station_name"],
        "series_description": "T2 FLAIR",
        "calling_ae": "MRSCANNER1",
        "instances": len(files),
    }
    assessment = payload["assessment"]
    assert assessment["id"] == body["provenance"]["assessment_id"]
    assert (assessment["status"], assessment["flag"]) == ("done", "fail")
    assert assessment["reasons"] == body["reasons"]
    assert {name: m["value"] for name, m in assessment["metrics"].items()} == {
        name: m["value"] for name, m in body["metrics"].items()
    }
    assert assessment["finished_at"].startswith(body["timings"]["finished_at"][:19])
    assert assessment["provenance"]["thresholds"]["snrd"]["fail"] == 15.0
    assert payload["reports"] == [
        {
            "kind": "sr",
            "sop_class_uid": report["sop_class_uid"],
            "sop_instance_uid": report["sop_instance_uid"],
            "series_instance_uid": report["series_instance_uid"],
            "instance_number": 1,
            "href": report["href"],
        }
    ]
    assert json.loads(requests[0].body) == payload

    labels = {"action": "webhook", "target": "qc-board"}
    assert metric(gate, "qcgate_delivery_retries_total", **labels) == 3
    assert metric(gate, "qcgate_delivery_attempts_total", outcome="delivered", **labels) == 1


def test_failing_webhooks_are_dead_letters_with_their_last_error(
    start_qcgate: Callable[..., QCGate], webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    webhook_receiver.fail_next(10, 503)
    with WebhookReceiver(secrets.token_hex(16)) as misconfigured:
        gate = start_with(
            start_qcgate,
            tmp_path / "config",
            webhooks={
                "flaky": webhook(webhook_receiver),
                # a secret the receiver does not share: 401 will not pass by retrying
                "wrong-secret": {"url": misconfigured.url, "secret": "not-the-receivers-secret"},
            },
            routing_rules=[{"name": "everyone", "webhooks": ["flaky", "wrong-secret"]}],
        )
        series_uid, files = series_files(tmp_path / "series", "T1 MPRAGE")
        assert storescu(gate.dicom_port, files).returncode == 0
        jobs = {job["target"]: job for job in wait_for_deliveries(gate, series_uid, 2, states=("dead",))}
        assert [request.outcome for request in misconfigured.requests] == ["rejected: bad signature"]
    assert jobs["flaky"]["attempts"] == 3
    assert jobs["flaky"]["last_error"] == "attempt 3: WebhookRejected: webhook 127.0.0.1 answered HTTP 503"
    assert jobs["wrong-secret"]["attempts"] == 1, "a 4xx other than 408/429 is not retried"
    assert "answered HTTP 401" in jobs["wrong-secret"]["last_error"]
    assert len(webhook_receiver.requests) == 3
    assert metric(gate, "qcgate_delivery_dead_letters_total", action="webhook", target="flaky") == 1
    assert metric(gate, "qcgate_delivery_dead_letters_total", action="webhook", target="wrong-secret") == 1
    assert "not-the-receivers-secret" not in gate.log_text()
