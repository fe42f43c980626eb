"""Crash safety: whatever was acknowledged survives kill -9 and is scored exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from qcgate.harness.peers import QCGate, storescu
from qcgate.synthetic.demo_series import write_phantom_series

pytestmark = pytest.mark.peers


def test_acknowledged_instances_survive_kill_9_and_are_scored_once(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_qcgate(data_dir=data_dir, quiet_period_s="60")
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(24, 96, 96))
    sent = storescu(first.dicom_port, files, extra=["-v"])
    first.kill()  # immediately after the last acknowledgement
    assert sent.returncode == 0
    assert sent.stderr.count("Received Store Response (Success)") == len(files), sent.stderr[-2000:]

    spooled = list((data_dir / "spool").rglob("*.dcm"))
    assert len(spooled) == len(files)
    assert all(pydicom.dcmread(path).PixelData for path in spooled)

    second = start_qcgate(data_dir=data_dir)
    body = second.wait_for_series(series_uid)
    assert body["instances"] == len(files)
    time.sleep(3)  # several sweeps later: still exactly one assessment
    assert second.get(f"/api/v1/series/{series_uid}").json()["assessments"] == 1


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_worker_killed_mid_assessment_loses_nothing(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    gate = start_qcgate(requeue_after_s="3", scoring_lease_s="3")
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(96, 192, 192))
    assert storescu(gate.dicom_port, files).returncode == 0
    gate.wait_for_series(series_uid, statuses=("processing",), min_assessments=0, timeout=60)
    (worker,) = _children(gate.processes[0].pid)
    os.kill(worker, signal.SIGKILL)

    body = gate.wait_for_series(series_uid, timeout=60)
    assert body["instances"] == len(files)
    assert body["assessments"] == 1, "the killed worker's half-done assessment was stored"


def test_scoring_slower_than_the_requeue_clock_gives_one_result_and_one_sr(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    """Issue 12: a series that took longer to score than ``requeue_after_s`` was re-queued while its
    worker still scored it, and every pass added an assessment, an SR and its deliveries."""
    gate = start_qcgate(requeue_after_s="0.5", scoring_lease_s="1", sweep_interval_s="0.1")
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(96, 192, 192))
    assert storescu(gate.dicom_port, files).returncode == 0
    gate.wait_for_series(series_uid, statuses=("processing",), min_assessments=0, timeout=60)
    started = time.monotonic()
    body = gate.wait_for_series(series_uid, timeout=120)
    assert time.monotonic() - started > 1, "scoring outlasted the requeue clock and the lease"
    time.sleep(3)  # thirty sweeps later
    body = gate.get(f"/api/v1/series/{series_uid}").json()
    assert (body["status"], body["assessments"]) == ("done", 1)
    assert len(list((gate.data_dir / "sr").rglob("*.dcm"))) == 1


def test_instances_whose_rows_were_lost_are_recorded_again_at_start_and_scored(
    start_qcgate: Callable[..., QCGate], tmp_path: Path
) -> None:
    """Issue 12 item 5: remove the rows of acknowledged instances, restart, they come back."""
    data_dir = tmp_path / "data"
    first = start_qcgate(data_dir=data_dir, quiet_period_s="60")
    series_uid, files = write_phantom_series(tmp_path / "series", shape=(12, 64, 64))
    assert storescu(first.dicom_port, files).returncode == 0
    first.kill()
    with sqlite3.connect(data_dir / "qcgate.db") as database:
        database.execute("DELETE FROM instances WHERE id % 2 = 0")
        database.execute("UPDATE series SET instance_count = instance_count / 2")
    second = start_qcgate(data_dir=data_dir)
    body = second.wait_for_series(series_uid)
    assert (body["instances"], body["assessments"]) == (len(files), 1)
    assert "spool reconciled: 6 instance(s) on disk were not recorded and are now" in second.log_text()
