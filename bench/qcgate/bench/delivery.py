"""Results out, timed: SR latency to the PACS and forwarding throughput against DCMTK's storescu.

``qcgate serve`` runs with one destination, ``PACS`` (DCMTK storescp or Orthanc, ``--pacs``), and
two routing rules chosen by Series Description: "bench sr ..." series send their SR to the PACS,
"bench forward ..." series are forwarded to it. Both peers and every DCMTK process run with
``TCP_NODELAY=1``; qcgate sets it on its own associations.

(a) **SR latency.** Series of 12x96x96 are sent one at a time with ``/usr/bin/storescu``; each
round waits for its SR delivery to finish. The latency is the delivery job's ``delivered_at -
created_at``: from the transaction that stores the assessment (and creates the job) to the PACS's
C-STORE response, read back from ``GET /api/v1/deliveries``. It splits into pick-up (``created_at``
to ``last_attempt_at``: the task through the broker to the worker's claim), the send
(``last_duration_s``: association, C-STORE, release) and the rest (claiming the job, reading the
file meta). One cold series goes first, not counted. Goal: p95 under 1 s on loopback.

(b) **Forwarding throughput.** A 120x256x256 series is forwarded by qcgate and, in the same
round, sent by ``storescu`` from the same files to the same PACS; the order alternates between
rounds, and the PACS forgets the study before each send so that both store new instances. qcgate's
time is one attempt from its claim to the PACS's last response (``delivered_at -
last_attempt_at``: reading the file metas, association, every C-STORE, release); storescu's is
its process from start to exit. One cold round goes first, not counted. Reported: medians of
instances/s and MB/s (10^6 bytes), and qcgate's rate as a fraction of storescu's.

Writes ``delivery.json``, ``delivery.md`` and ``delivery.png`` into ``--out``; the markdown also
goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom

from qcgate.bench.common import (
    OUT_DIR,
    environment,
    progress,
    running_qcgate,
    send_concurrently,
    summary,
    write_series_files,
)
from qcgate.bench.delivery_peers import PACS_KINDS, Pacs, running_pacs
from qcgate.bench.delivery_report import markdown, plot
from qcgate.harness.peers import QCGate
from qcgate.synthetic.volumes import add_rician_noise, phantom_volume

LATENCY_SHAPE = (12, 96, 96)
FORWARD_SHAPE = (120, 256, 256)
TINY_LATENCY_SHAPE, TINY_FORWARD_SHAPE = (8, 64, 64), (10, 64, 64)
LATENCY_GOAL_S = 1.0  # the 95th percentile, on loopback
NOISE_FRACTION = 0.02
POLL_INTERVAL_S = 0.02
JOB_TIMEOUT_S = 120.0
SENDERS = ("qcgate", "storescu")
SR_SERIES, FORWARD_SERIES = "bench sr", "bench forward"
SETTINGS = {
    "quiet_period_s": "0.5",
    "sweep_interval_s": "0.1",
    "requeue_after_s": "600",
    "delivery_timeout_s": "60",
}


def qcgate_settings(pacs: Pacs) -> dict[str, str]:
    destination = {"PACS": {"ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.port}}
    rules = [
        {"name": "sr", "match": {"series_description": f"^{SR_SERIES} "}, "send_sr": ["PACS"]},
        {"name": "forward", "match": {"series_description": f"^{FORWARD_SERIES} "}, "forward": ["PACS"]},
    ]
    return {**SETTINGS, "destinations": json.dumps(destination), "routing_rules": json.dumps(rules)}


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def finished_job(gate: QCGate, client: httpx.Client, series_uid: str, action: str) -> dict[str, Any]:
    """The series' delivery job for ``action`` once delivered; RuntimeError when it went dead.

    A TimeoutError says where the series and its job stood and ends with qcgate's log, so that a
    stall in CI can be read from the failure alone (the test's own timeout is longer).
    """
    deadline = time.monotonic() + JOB_TIMEOUT_S
    job = None
    while time.monotonic() < deadline:
        jobs = client.get("/api/v1/deliveries", params={"series": series_uid, "action": action}).json()
        job = jobs["items"][0] if jobs["items"] else None
        if job is not None and job["state"] == "dead":
            raise RuntimeError(f"{action} of {series_uid} is dead: {job['last_error']}")
        if job is not None and job["state"] == "delivered":
            return dict(job)
        time.sleep(POLL_INTERVAL_S)
    series = client.get(f"/api/v1/series/{series_uid}").json()
    raise TimeoutError(
        f"{action} of {series_uid} not delivered within {JOB_TIMEOUT_S} s; series status "
        f"{series.get('status')}, job {job}; log:\n{gate.log_text()[-5000:]}"
    )


def study_of(paths: list[Path]) -> tuple[str, list[str]]:
    """(StudyInstanceUID, SOP Instance UIDs) of a series' files."""
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    return str(headers[0].StudyInstanceUID), [str(header.SOPInstanceUID) for header in headers]


def latency_round(
    gate: QCGate, client: httpx.Client, pacs: Pacs, volume: np.ndarray, directory: Path
) -> dict[str, Any]:
    series = write_series_files(volume, directory, f"{SR_SERIES} {directory.name}")
    send_concurrently(gate.dicom_port, [series.paths])
    job = finished_job(gate, client, series.series_instance_uid, "send_sr")
    pacs.wait_for(study_of(series.paths)[0], [job["report_sop_instance_uid"]])
    timings = client.get(f"/api/v1/series/{series.series_instance_uid}").json()["timings"]
    created, claimed, delivered = (
        timestamp(job[k]) for k in ("created_at", "last_attempt_at", "delivered_at")
    )
    return {
        "series_instance_uid": series.series_instance_uid,
        "sr_sop_instance_uid": job["report_sop_instance_uid"],
        "attempts": job["attempts"],
        "latency_s": delivered - created,
        "pickup_s": claimed - created,
        "send_s": job["last_duration_s"],
        "finished_to_delivered_s": delivered - timestamp(timings["finished_at"]),
    }


def forward_round(
    gate: QCGate,
    client: httpx.Client,
    pacs: Pacs,
    volume: np.ndarray,
    directory: Path,
    order: tuple[str, ...],
) -> dict[str, Any]:
    series = write_series_files(volume, directory, f"{FORWARD_SERIES} {directory.name}")
    study_uid, uids = study_of(series.paths)
    seconds: dict[str, float] = {}
    for sender in order:
        pacs.forget(study_uid)
        if sender == "storescu":
            seconds[sender] = send_concurrently(pacs.port, [series.paths], called_ae=pacs.ae_title)
        else:
            send_concurrently(gate.dicom_port, [series.paths])
            job = finished_job(gate, client, series.series_instance_uid, "forward")
            seconds[sender] = timestamp(job["delivered_at"]) - timestamp(job["last_attempt_at"])
            seconds["qcgate_send"] = job["last_duration_s"]
        pacs.wait_for(study_uid, uids)
    pacs.forget(study_uid)
    rates = {f"{sender}_instances_per_s": len(uids) / seconds[sender] for sender in SENDERS}
    return {
        "series_instance_uid": series.series_instance_uid,
        "instances": len(uids),
        "bytes": series.total_bytes,
        "order": list(order),
        **{f"{name}_s": value for name, value in seconds.items()},
        **rates,
    }


def run(pacs_kind: str, series_count: int, rounds: int, tiny: bool) -> dict[str, Any]:
    latency_shape, forward_shape = (
        (TINY_LATENCY_SHAPE, TINY_FORWARD_SHAPE) if tiny else (LATENCY_SHAPE, FORWARD_SHAPE)
    )
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-delivery-") as temp:
        root = Path(temp)
        progress(f"starting {pacs_kind} and qcgate serve")
        with (
            running_pacs(pacs_kind, root / "pacs") as pacs,
            running_qcgate("serve", root / "qcgate", **qcgate_settings(pacs)) as gate,
            httpx.Client(base_url=gate.base_url, timeout=30) as client,
        ):
            small, large = phantom_volume(latency_shape, seed=0), phantom_volume(forward_shape, seed=1)
            latency = []
            for index in range(series_count + 1):
                noisy = add_rician_noise(small, float(np.percentile(small, 99)) * NOISE_FRACTION, seed=index)
                latency.append(latency_round(gate, client, pacs, noisy, root / f"sr-{index}"))
                label = "cold (not counted)" if index == 0 else f"series {index}/{series_count}"
                progress(f"SR {label}: {latency[-1]['latency_s'] * 1000:.0f} ms stored result to PACS answer")
            forward = []
            for index in range(rounds + 1):
                order = SENDERS if index % 2 == 0 else SENDERS[::-1]
                noisy = add_rician_noise(large, float(np.percentile(large, 99)) * NOISE_FRACTION, seed=index)
                forward.append(forward_round(gate, client, pacs, noisy, root / f"forward-{index}", order))
                label = "cold (not counted)" if index == 0 else f"round {index}/{rounds}"
                progress(
                    f"forward {label}: qcgate {forward[-1]['qcgate_s']:.2f} s, "
                    f"storescu {forward[-1]['storescu_s']:.2f} s ({' then '.join(order)})"
                )
            pacs_version = pacs.version
    return {
        "environment": {**environment(), "pacs": pacs_version},
        "settings": {
            "pacs": pacs_kind,
            "tiny": tiny,
            "series": series_count,
            "rounds": rounds,
            "latency_shape": list(latency_shape),
            "forward_shape": list(forward_shape),
            "noise_fraction": NOISE_FRACTION,
            "qcgate": SETTINGS,
        },
        "latency": {"cold": latency[0], "series": latency[1:], "summary": latency_summary(latency[1:])},
        "forward": {"cold": forward[0], "rounds": forward[1:], "summary": forward_summary(forward[1:])},
    }


def latency_summary(series: list[dict[str, Any]]) -> dict[str, Any]:
    phases = ("latency_s", "pickup_s", "send_s", "finished_to_delivered_s")
    result: dict[str, Any] = {
        phase: {
            **summary([s[phase] for s in series]),
            "p95": float(np.percentile([s[phase] for s in series], 95)),
        }
        for phase in phases
    }
    result["retried"] = sum(s["attempts"] > 1 for s in series)
    result["goal_s"] = LATENCY_GOAL_S
    result["meets_goal"] = result["latency_s"]["p95"] < LATENCY_GOAL_S
    return result


def forward_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for sender in SENDERS:
        seconds = summary([r[f"{sender}_s"] for r in rounds])
        result[sender] = {
            "seconds": seconds,
            "instances_per_s": summary([r[f"{sender}_instances_per_s"] for r in rounds]),
            "megabytes_per_s": summary([r["bytes"] / r[f"{sender}_s"] / 1e6 for r in rounds]),
        }
    result["qcgate_send_s"] = summary([r["qcgate_send_s"] for r in rounds])
    result["ratio"] = (
        result["qcgate"]["instances_per_s"]["median"] / result["storescu"]["instances_per_s"]["median"]
    )
    return result


def publish(result: dict[str, Any], out: Path) -> str:
    """Write ``delivery.json``, ``delivery.md`` and ``delivery.png`` into ``out``; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    report = markdown(result)
    (out / "delivery.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "delivery.md").write_text(report)
    plot(result, out / "delivery.png")
    progress(f"wrote {out / 'delivery.json'}, delivery.md and delivery.png")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.delivery", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--pacs", choices=PACS_KINDS, default="storescp", help="the PACS peer (storescp)")
    parser.add_argument("--series", type=int, default=30, help="SR latency series, after one cold one (30)")
    parser.add_argument("--rounds", type=int, default=6, help="forwarding rounds, after one cold one (6)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for delivery.{json,md,png}")
    parser.add_argument("--tiny", action="store_true", help="smoke form: small series (the test's)")
    args = parser.parse_args(argv)
    if args.series < 1 or args.rounds < 1:
        parser.error("--series and --rounds must be at least 1")
    result = run(args.pacs, args.series, args.rounds, args.tiny)
    sys.stdout.write(publish(result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
