"""The scale path: receiver, API and worker as separate processes over Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from qcgate.harness.peers import QCGate, storescu
from qcgate.synthetic.demo_series import write_phantom_series

pytestmark = pytest.mark.peers


def test_redis_and_postgresql_carry_a_series_through_separate_processes(
    start_qcgate: Callable[..., QCGate], postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    gate = start_qcgate(["scp"], ["api"], ["worker"], database_url=postgres_url, broker_url=redis_url)
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(10, 96, 96))
    assert storescu(gate.dicom_port, files).returncode == 0
    body = gate.wait_for_series(series_uid)
    assert body["instances"] == len(files)
    assert body["status"] == "done"
    assert body["metrics"]["snrd"]["value"] > 0
    assert "qcgate_instances_received_total" in gate.get("/metrics").text
    assert redis.Redis.from_url(redis_url).llen("qcgate") == 0, "a task was left in the Redis queue"


def test_series_queued_while_the_broker_is_unreachable_is_sent_later(
    start_qcgate: Callable[..., QCGate], postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The outbox: completion is recorded first; the sweeper re-sends once the task can be delivered."""
    dead_broker = "redis://127.0.0.1:1/0"
    receiver = start_qcgate(
        ["scp"],
        ["api"],
        database_url=postgres_url,
        broker_url=dead_broker,
        requeue_after_s="2",
        data_dir=tmp_path / "shared",
    )
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(8, 64, 64))
    assert storescu(receiver.dicom_port, files).returncode == 0
    assert receiver.wait_for_series(series_uid, statuses=("queued",), min_assessments=0)["status"] == "queued"
    receiver.stop()

    gate = start_qcgate(
        ["scp"],
        ["api"],
        ["worker"],
        database_url=postgres_url,
        broker_url=redis_url,
        requeue_after_s="2",
        data_dir=tmp_path / "shared",
    )
    assert gate.wait_for_series(series_uid)["assessments"] == 1
