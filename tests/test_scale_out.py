"""Scaling out (issue 13): one leading completion sweeper however many run, receiver processes
sharing one DICOM port, the status endpoint of processes that serve no API, and ``qcgate migrate``.

Two receivers and three workers on separate "machines" under chaos: ``tests/test_chaos.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from qcgate.cli.status_server import StatusServer
from qcgate.core.settings import get_settings
from qcgate.harness.peers import QCGate, free_port, qcgate_env, storescu
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.synthetic.demo_series import write_phantom_series
from qcgate.worker.leadership import SweeperLeadership


def test_one_sweeper_leads_on_sqlite_and_hands_over_when_it_stops(tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path)
    first, second = SweeperLeadership(settings), SweeperLeadership(settings)
    assert first.held()
    assert not second.held(), "two sweepers led at once"
    assert first.held(), "the leader lost the lead by asking again"
    first.release()
    assert second.held(), "the lead was not handed over"
    assert not first.held()
    second.release()


@pytest.mark.peers
def test_one_sweeper_leads_on_postgresql_and_a_lost_connection_hands_over(postgres_url: str) -> None:
    settings = get_settings(database_url=postgres_url)
    first, second = SweeperLeadership(settings), SweeperLeadership(settings)
    assert first.held()
    assert not second.held(), "two sweepers led at once"
    # The leader's database connection dies (a network cut, the leader's pod frozen and fenced):
    # its advisory lock ends with it, and the other sweeper takes over at its next try.
    admin = postgres_url.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as connection:
        (ended,) = connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
        ).fetchone() or (0,)
    assert ended == 1
    assert second.held(), "the lead was not taken over after the leader's connection ended"
    assert not first.held(), "the old leader still believed it led"
    second.release()
    first.release()


def test_status_endpoint_answers_health_readiness_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings(data_dir=tmp_path, status_port=free_port())
    settings.metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(settings.metrics_dir))
    upgrade_database(settings.effective_database_url)
    leadership = SweeperLeadership(settings)
    assert leadership.held()
    sessions = session_factory(create_database_engine(settings.effective_database_url))
    server = StatusServer(settings, sessions, "scp", leadership)
    server.start()
    nowhere = "sqlite:////nonexistent/dir/x.db"
    broken = StatusServer(
        get_settings(data_dir=tmp_path, status_port=free_port(), database_url=nowhere),
        session_factory(create_engine(nowhere)),
        "worker",
    )
    broken.start()
    try:
        base = f"http://127.0.0.1:{settings.status_port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "kind": "scp"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "qcgate_queue_depth 0.0" in metrics.text.splitlines(), "the leader reports the gauges"
        assert httpx.get(f"{base}/nothing").status_code == 404
        broken_base = f"http://127.0.0.1:{broken.server_address[1]}"
        assert httpx.get(f"{broken_base}/healthz").status_code == 200, "liveness needs no database"
        unready = httpx.get(f"{broken_base}/readyz")
        assert unready.status_code == 503
        assert "database unavailable" in unready.json()["detail"]
        assert "qcgate_queue_depth" not in httpx.get(f"{broken_base}/metrics").text, "a worker never leads"
    finally:
        server.stop()
        broken.stop()
        leadership.release()


@pytest.mark.peers
def test_migrate_brings_an_empty_database_to_the_current_schema(postgres_url: str, tmp_path: Path) -> None:
    env = qcgate_env(tmp_path, free_port(), free_port(), database_url=postgres_url)
    done = subprocess.run(
        [sys.executable, "-m", "qcgate.cli.main", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    tables = set(inspect(create_engine(postgres_url)).get_table_names())
    assert {"series", "instances", "assessments", "reports", "delivery_jobs", "alembic_version"} <= tables


def _counter_pids(metrics_dir: Path) -> set[str]:
    """The PIDs that wrote counters into a multiprocess metrics directory (``counter_<pid>.db``)."""
    return {path.stem.removeprefix("counter_") for path in metrics_dir.glob("counter_*.db")}


@pytest.mark.peers
def test_receiver_processes_share_one_port_and_store_everything(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    gate = start_qcgate(
        ["scp"], ["api"], receiver_processes="2", status_port=str(free_port()), receiver_runs_sweeper="false"
    )
    _, files = write_phantom_series(tmp_path / "series", shape=(16, 32, 32))
    # One association per instance: the kernel spreads new connections over the two processes.
    for path in files:
        assert storescu(gate.dicom_port, [path]).returncode == 0
    assert len(list((gate.data_dir / "spool").rglob("*.dcm"))) == len(files)
    metrics = httpx.get(f"{gate.status_url}/metrics", timeout=10).text
    assert f"qcgate_instances_received_total {float(len(files))}" in metrics.splitlines()
    receivers = _counter_pids(gate.data_dir / "prometheus")
    assert len(receivers) >= 2, f"only processes {receivers} received: the port was not shared"
    # Sharing is asked for, never implied: a plain receiver on the same port still fails to bind.
    lone = subprocess.run(
        [sys.executable, "-m", "qcgate.cli.main", "scp"],
        env={**gate.env, "QCGATE_RECEIVER_PROCESSES": "1", "QCGATE_DATA_DIR": str(tmp_path / "lone")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lone.returncode != 0
    assert "Address already in use" in lone.stderr


@pytest.mark.peers
def test_sweepers_apart_from_the_receiver_complete_series_with_one_leader(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    """`qcgate sweeper` twice beside a receiver that sweeps nothing: series complete, one sweeper leads."""
    gate = start_qcgate(["scp"], ["api"], ["worker"], receiver_runs_sweeper="false")
    sweepers = []
    for index in range(2):
        env = {**gate.env, "QCGATE_STATUS_PORT": str(free_port())}
        sweepers.append(
            QCGate(
                gate.data_dir, gate.dicom_port, gate.http_port, env, [["sweeper"]], cwd=tmp_path / f"s{index}"
            )
        )
        sweepers[-1].start()
    try:
        series_uid, files = write_phantom_series(tmp_path / "series", shape=(8, 48, 48))
        assert storescu(gate.dicom_port, files).returncode == 0
        assert gate.wait_for_series(series_uid)["assessments"] == 1
        leaders = [s for s in sweepers if "qcgate_queue_depth" in httpx.get(f"{s.status_url}/metrics").text]
        assert len(leaders) == 1, "not exactly one sweeper led"
        leaders[0].stop()  # a clean stop hands the lead over
        deadline = time.monotonic() + 10
        follower = next(s for s in sweepers if s is not leaders[0])
        while "qcgate_queue_depth" not in httpx.get(f"{follower.status_url}/metrics").text:
            assert time.monotonic() < deadline, "the other sweeper did not take over"
            time.sleep(0.2)
        second_uid, files = write_phantom_series(tmp_path / "second", shape=(8, 48, 48), seed=9)
        assert storescu(gate.dicom_port, files).returncode == 0
        assert gate.wait_for_series(second_uid)["assessments"] == 1
    finally:
        for sweeper in sweepers:
            sweeper.stop()
