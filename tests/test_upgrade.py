"""Upgrade: a data directory written by qcgate 0.1.0 is served by this version without loss or rework.

The fixture (``tests/fixtures/upgrade-0.1.0``, made by its ``make_fixture.py``, described in its
README) is the embedded default: SQLite, spool and SR files, with every stored path relative to
the data directory, so a copy anywhere is served as it is. It holds four series of one study:

- A: done, its SR delivered to ARCHIVE;
- B: done, its SR delivery pending after a refused attempt;
- D: done, its SR delivery left ``sending`` (qcgate stopped mid-attempt; the lease has run out);
- C: received and queued, never scored.

Started on a copy with ARCHIVE up, qcgate must migrate the database, keep A's assessment and SR as
they are, score C once, and finish every pending delivery, scoring nothing twice.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pynetdicom import AE, AllStoragePresentationContexts, evt

from qcgate.harness.peers import QCGate, free_port

pytestmark = [pytest.mark.peers, pytest.mark.slow]

VERIFICATION = "1.2.840.10008.1.1"  # C-ECHO
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "upgrade-0.1.0"
SERIES = {
    "A": "1.2.826.0.1.3680043.8.498.58424238658313183871423268850033371560",  # done, SR delivered
    "B": "1.2.826.0.1.3680043.8.498.11963880814328804152857653047346640716",  # done, SR pending
    "D": "1.2.826.0.1.3680043.8.498.19239400745542880403816226627162242910",  # done, SR sending
    "C": "1.2.826.0.1.3680043.8.498.13250140258990242754168457015241616779",  # queued
}
TERMINAL = ("delivered", "dead")


class ArchivePeer:
    """A pynetdicom storage SCP playing the ARCHIVE destination; counts what it received."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: Counter[str] = Counter()
        self._lock = threading.Lock()
        ae = AE(ae_title="ARCHIVE")
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(VERIFICATION)
        server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        assert server is not None
        self._server = server

    def _on_store(self, event: Any) -> int:
        with self._lock:
            self.received[str(event.request.AffectedSOPInstanceUID)] += 1
        return 0x0000

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture
def archive() -> Iterator[ArchivePeer]:
    peer = ArchivePeer()
    yield peer
    peer.stop()


def _utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def read_fixture(database: Path) -> dict[str, Any]:
    """What 0.1.0 stored, read straight from its SQLite file (the 0.1.0 schema) before any upgrade."""
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        series = {row["series_instance_uid"]: dict(row) for row in db.execute("SELECT * FROM series")}
        assessments, reports, jobs = (
            {
                row["series_uid"]: dict(row)
                for row in db.execute(
                    f"SELECT t.*, s.series_instance_uid AS series_uid FROM {table} t "
                    "JOIN series s ON s.id = t.series_id"
                )
            }
            for table in ("assessments", "reports", "delivery_jobs")
        )
    return {"series": series, "assessments": assessments, "reports": reports, "jobs": jobs}


def assessments_per_series(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT s.series_instance_uid, count(a.id) FROM series s "
            "LEFT JOIN assessments a ON a.series_id = s.id GROUP BY s.id"
        )
        return dict(rows.fetchall())


def wait_for_jobs(gate: QCGate, series_uid: str, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = gate.get("/api/v1/deliveries", params={"series": series_uid}).json()["items"]
        if len(items) == count and all(item["state"] in TERMINAL for item in items):
            return items
        time.sleep(0.25)
    raise TimeoutError(
        f"deliveries of {series_uid} not terminal in {timeout} s: {items}\n{gate.log_text()[-5000:]}"
    )


def test_data_directory_of_0_1_0_is_served_scored_once_and_delivered(
    start_qcgate: Callable[..., QCGate], archive: ArchivePeer, tmp_path: Path
) -> None:
    # Relocate: the fixture is copied as it is; every path it stores is relative to data_dir.
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURE / "data", data_dir)
    stored = read_fixture(data_dir / "qcgate.db")
    assert {uid: row["status"] for uid, row in stored["series"].items()} == {
        SERIES["A"]: "done",
        SERIES["B"]: "done",
        SERIES["D"]: "done",
        SERIES["C"]: "queued",
    }
    assert {uid: job["state"] for uid, job in stored["jobs"].items()} == {
        SERIES["A"]: "delivered",
        SERIES["B"]: "pending",
        SERIES["D"]: "sending",
    }
    # The fixture's clocks are absolute: a just-made fixture has leases and backoffs still running.
    in_flight_due = [
        _utc(job["next_attempt_at"]) for job in stored["jobs"].values() if job["state"] != "delivered"
    ]
    wait_s = max(0.0, *((due - datetime.now(UTC)).total_seconds() for due in in_flight_due if due)) + 90.0

    config = yaml.safe_load((FIXTURE / "qcgate.yaml").read_text())
    config["destinations"]["ARCHIVE"]["port"] = archive.port
    config_path = tmp_path / "qcgate.yaml"
    config_path.write_text(yaml.safe_dump(config))
    gate = start_qcgate(
        data_dir=data_dir, config=str(config_path), requeue_after_s="5", delivery_retry_base_s="1"
    )

    # A: still served with the very assessment 0.1.0 stored, and its SR file still found.
    a_uid = SERIES["A"]
    body = gate.get(f"/api/v1/series/{a_uid}").json()
    old = stored["assessments"][a_uid]
    assert body["status"] == "done"
    assert body["assessments"] == 1
    assert body["flag"] == old["flag"]
    assert body["metrics"] == json.loads(old["metrics"])
    assert body["provenance"]["assessment_id"] == old["id"]
    assert body["provenance"]["metric_versions"] == json.loads(old["provenance"])["metric_versions"]
    (report,) = gate.get(f"/api/v1/series/{a_uid}/reports").json()["items"]
    old_report = stored["reports"][a_uid]
    assert report["sop_instance_uid"] == old_report["sop_instance_uid"]
    download = gate.get(report["href"])
    assert download.status_code == 200
    assert download.content == (FIXTURE / "data" / "sr" / old_report["path"]).read_bytes()

    # C: the queued series is scored, once.
    c_body = gate.wait_for_series(SERIES["C"], timeout=120)
    assert c_body["assessments"] == 1
    assert c_body["instances"] == stored["series"][SERIES["C"]]["instance_count"]

    # Every in-flight delivery ends, and C's new SR goes out too; nothing is redelivered.
    final = {uid: wait_for_jobs(gate, uid, 1, wait_s) for uid in SERIES.values()}
    assert {uid: items[0]["state"] for uid, items in final.items()} == dict.fromkeys(
        SERIES.values(), "delivered"
    )
    for letter in ("A", "B", "D"):
        uid = SERIES[letter]
        (job,) = final[uid]
        assert job["id"] == stored["jobs"][uid]["id"]
        assert job["report_sop_instance_uid"] == stored["reports"][uid]["sop_instance_uid"]
    assert final[SERIES["A"]][0]["attempts"] == 1
    assert final[SERIES["B"]][0]["attempts"] == 2  # the refused attempt, then this one
    assert final[SERIES["D"]][0]["attempts"] == 2  # the lost attempt counts
    sr_uids = {uid: final[uid][0]["report_sop_instance_uid"] for uid in SERIES.values()}
    assert archive.received == Counter(sr_uids[SERIES[letter]] for letter in ("B", "D", "C"))

    # Nothing scored twice, several sweeps later.
    time.sleep(3)
    for uid in SERIES.values():
        body = gate.get(f"/api/v1/series/{uid}").json()
        assert (body["status"], body["assessments"]) == ("done", 1), uid
    assert assessments_per_series(data_dir / "qcgate.db") == dict.fromkeys(SERIES.values(), 1)
    for letter in ("A", "B", "D"):
        assert gate.get(f"/api/v1/series/{SERIES[letter]}").json()["metrics"] == json.loads(
            stored["assessments"][SERIES[letter]]["metrics"]
        )
