"""``make chaos``: series stream in while processes are killed and the database and broker restart.

Loopback only, bounded in time, on a PostgreSQL cluster and a Redis server of its own (free ports;
the machine's shared ones stay up for other tests). ``--receivers`` receivers (each ``qcgate scp``
and ``api`` on ports of its own, each running a completion sweeper of which one leads) and
``--workers`` workers run as separate process groups, each in a working directory and with a
metrics directory of its own, sharing only PostgreSQL, Redis and the data volume (spool and SRs), as
on separate machines. DCMTK's storescp is the PACS, and a routing rule sends every SR there. While a
sender streams ``--series`` series to the receivers in turn (re-sending a series, to the next
receiver, until storescu reports every instance stored, as a scanner's queue behind a load balancer
does), a chaos thread, every ``--every`` seconds in turn: kill -9s a worker (and starts another),
kill -9s Redis (and restarts it), crashes PostgreSQL (immediate stop, recovery on start), kill -9s
a receiver, the sweeper's leader first (and restarts it).

At the end, once every series is scored, it checks, and ``main`` exits 1 unless all hold:

* every instance the sender got acknowledged is stored in the spool and recorded;
* at most one assessment and one SR per (series, revision), and every series ``done`` at its
  current revision;
* at the PACS, exactly the SRs recorded as delivered: one SOP Instance UID per SR (re-sends file once).

Writes ``chaos.json`` into ``--out``; progress to stderr. ``tests/test_chaos.py`` runs a short one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pydicom

from qcgate.bench.common import OUT_DIR, progress
from qcgate.harness.peers import QCGate, free_port, qcgate_env, storescu
from qcgate.harness.private_servers import OwnPostgres, OwnRedis
from qcgate.harness.storescp_peer import StorescpPacs
from qcgate.synthetic.demo_series import write_phantom_series

SETTINGS = {
    "quiet_period_s": "1",
    "sweep_interval_s": "0.2",
    "requeue_after_s": "5",
    "scoring_lease_s": "3",
    "delivery_retry_base_s": "0.5",
    "delivery_retry_max_s": "2",
    "delivery_lease_s": "10",
    "delivery_timeout_s": "10",
}
SETTLE_TIMEOUT_S = 240.0
SEND_ATTEMPTS = 20


class Cluster:
    """The qcgate process groups of the run: ``receivers`` receivers (scp + api), ``workers`` workers."""

    def __init__(self, root: Path, receivers: int, workers: int, **settings: str) -> None:
        self.root, self.settings = root, settings
        self.started = itertools.count()
        self.receivers = [self._gate([["scp"], ["api"]]) for _ in range(receivers)]
        self.workers = [self._gate([["worker"]]) for _ in range(workers)]
        self.kills = {"worker": 0, "receiver": 0, "redis": 0, "postgres": 0}

    def _gate(self, commands: list[list[str]], ports: tuple[int, int] | None = None) -> QCGate:
        """A process group as on a machine of its own: own working and metrics directories, the
        shared data volume; a restarted receiver keeps its ports (its address in the load balancer)."""
        dicom_port, http_port = ports or (free_port(), free_port())
        machine = self.root / f"machine-{next(self.started)}"
        env = qcgate_env(
            self.root / "data",
            dicom_port,
            http_port,
            prometheus_dir=str(machine / "prometheus"),
            status_port=str(free_port()),
            **self.settings,
        )
        return QCGate(self.root / "data", dicom_port, http_port, env, commands, cwd=machine)

    def start(self) -> None:
        for gate in [*self.receivers, *self.workers]:
            gate.start()

    def kill_worker(self, index: int) -> None:
        slot = index % len(self.workers)
        self.workers[slot].kill()
        self.workers[slot] = self._gate([["worker"]])
        self.workers[slot].start()
        self.kills["worker"] += 1

    def kill_receiver(self) -> None:
        """kill -9 the receiver whose sweeper leads (the first if none does), then start it again."""
        slot = next((i for i, gate in enumerate(self.receivers) if _leads(gate)), 0)
        victim = self.receivers[slot]
        victim.kill()
        self.receivers[slot] = self._gate([["scp"], ["api"]], (victim.dicom_port, victim.http_port))
        self.receivers[slot].start(timeout=120)
        self.kills["receiver"] += 1

    def stop(self) -> None:
        for gate in [*self.receivers, *self.workers]:
            gate.stop()


def _leads(gate: QCGate) -> bool:
    """Whether this receiver's sweeper leads: only the leader reports the queue depth."""
    try:
        return "qcgate_queue_depth" in httpx.get(f"{gate.status_url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return False


def _send_until_stored(cluster: Cluster, files: list[Path], first: int) -> int:
    """storescu the series, to receiver ``first`` and then the next in turn, until every instance is
    acknowledged; returns the attempts it took."""
    for attempt in range(1, SEND_ATTEMPTS + 1):
        receiver = cluster.receivers[(first + attempt - 1) % len(cluster.receivers)]
        try:
            if storescu(receiver.dicom_port, files).returncode == 0:
                return attempt
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"a series was not acknowledged in {SEND_ATTEMPTS} attempts")


def _chaos(
    cluster: Cluster, redis: OwnRedis, postgres: OwnPostgres, every_s: float, stop: threading.Event
) -> None:
    actions = itertools.cycle(["worker", "redis", "postgres", "receiver"])
    for index in itertools.count():
        if stop.wait(every_s):
            return
        action = next(actions)
        progress(f"chaos: {action}")
        if action == "worker":
            cluster.kill_worker(index)
        elif action == "redis":
            redis.kill()
            time.sleep(0.5)
            redis.start()
            cluster.kills["redis"] += 1
        elif action == "postgres":
            postgres.crash()
            time.sleep(0.5)
            postgres.start()
            cluster.kills["postgres"] += 1
        else:
            cluster.kill_receiver()


def _facts(database_url: str) -> dict[str, Any]:
    """What PostgreSQL holds, per series: status, revision, instances, assessments and SRs per revision."""
    with psycopg.connect(database_url.replace("+psycopg", ""), connect_timeout=10) as connection:
        series = {
            uid: {"id": sid, "status": status, "revision": revision, "instances": count}
            for sid, uid, status, revision, count in connection.execute(
                "SELECT id, series_instance_uid, status, revision, instance_count FROM series"
            )
        }
        assessments = list(connection.execute("SELECT series_id, revision FROM assessments"))
        reports = list(
            connection.execute(
                "SELECT r.series_id, a.revision, r.sop_instance_uid FROM reports r"
                " JOIN assessments a ON a.id = r.assessment_id WHERE r.kind = 'sr'"
            )
        )
        delivered = {
            uid
            for (uid,) in connection.execute(
                "SELECT r.sop_instance_uid FROM delivery_jobs j JOIN reports r ON r.id = j.report_id"
                " WHERE j.action = 'send_sr' AND j.state = 'delivered'"
            )
        }
        recorded = {uid for (uid,) in connection.execute("SELECT sop_instance_uid FROM instances")}
    return {
        "series": series,
        "assessments": assessments,
        "reports": reports,
        "delivered": delivered,
        "recorded": recorded,
    }


def _settled(database_url: str, expected: set[str]) -> bool:
    try:
        facts = _facts(database_url)
    except psycopg.Error:
        return False
    series = facts["series"]
    if not expected <= set(series) or any(s["status"] != "done" for s in series.values()):
        return False
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        (open_jobs,) = connection.execute(
            "SELECT count(*) FROM delivery_jobs WHERE state IN ('pending', 'sending')"
        ).fetchone() or (0,)
    return open_jobs == 0


def run(
    series_count: int,
    shape: tuple[int, int, int],
    workers: int,
    every_s: float,
    root: Path,
    receivers: int = 2,
) -> dict[str, Any]:
    postgres, redis = OwnPostgres().create(), OwnRedis(root / "redis").start()
    pacs = StorescpPacs(root / "pacs").start()
    destination = {"PACS": {"ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.port}}
    cluster = Cluster(
        root,
        receivers,
        workers,
        database_url=postgres.url,
        broker_url=redis.url,
        destinations=json.dumps(destination),
        routing_rules=json.dumps([{"name": "sr", "send_sr": ["PACS"]}]),
        **SETTINGS,
    )
    stop = threading.Event()
    chaos = threading.Thread(target=_chaos, args=(cluster, redis, postgres, every_s, stop), daemon=True)
    sent: dict[str, set[str]] = {}
    attempts = []
    started = time.monotonic()
    try:
        cluster.start()
        chaos.start()
        # Every kind of fault at least once: keep streaming until the chaos thread has been round
        # its whole cycle, or three cycles' time has passed. A cap in time, not in series: on a
        # fast machine three times the series were all acknowledged before the last fault came.
        give_up_at = time.monotonic() + 3 * every_s * (len(cluster.kills) + 1)
        for index in itertools.count():
            if index >= series_count and (min(cluster.kills.values()) > 0 or time.monotonic() > give_up_at):
                break
            uid, files = write_phantom_series(root / f"series-{index}", shape=shape, seed=index)
            attempts.append(_send_until_stored(cluster, files, index))
            sent[uid] = {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}
            progress(
                f"series {index + 1} (of {series_count} or more) acknowledged ({attempts[-1]} attempt(s))"
            )
        stop.set()
        chaos.join()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not _settled(postgres.url, set(sent)) and time.monotonic() < deadline:
            time.sleep(1)
        facts = _facts(postgres.url)
        received = pacs.received_uids()
    finally:
        stop.set()
        cluster.stop()
        pacs.stop()
        redis.kill()
        postgres.stop()
    spooled = {path.stem for path in (root / "data" / "spool").rglob("*.dcm")}
    acknowledged = set().union(*sent.values())
    per_revision_assessments = _most_per_key((s, r) for s, r in facts["assessments"])
    per_revision_reports = _most_per_key((s, r) for s, r, _ in facts["reports"])
    checks = {
        "every acknowledged instance stored": acknowledged <= spooled,
        "every acknowledged instance recorded": acknowledged <= facts["recorded"],
        "every series done": all(facts["series"].get(uid, {}).get("status") == "done" for uid in sent),
        "at most one assessment per revision": per_revision_assessments <= 1,
        "at most one SR per revision": per_revision_reports <= 1,
        "the PACS holds exactly the delivered SRs": received == facts["delivered"],
        "every done series' SR delivered": len(facts["delivered"]) >= len(sent),
    }
    return {
        "receivers": receivers,
        "workers": workers,
        "series": len(sent),
        "instances": len(acknowledged),
        "send_attempts": attempts,
        "kills": cluster.kills,
        "assessments": len(facts["assessments"]),
        "srs_at_pacs": len(received),
        "wall_s": round(time.monotonic() - started, 1),
        "checks": checks,
        "passed": all(checks.values()),
    }


def _most_per_key(keys: Any) -> int:
    counts: dict[Any, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return max(counts.values(), default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=(16, 64, 64))
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--every", type=float, default=4.0, help="seconds between two chaos actions")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qcgate-chaos-") as temp:
        result = run(args.series, tuple(args.shape), args.workers, args.every, Path(temp), args.receivers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chaos.json").write_text(json.dumps(result, indent=1) + "\n")
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    os.environ.setdefault("TCP_NODELAY", "1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
