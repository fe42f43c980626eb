"""End-to-end latency: from the last C-STORE response to the assessment being visible over REST.

``qcgate serve`` runs with a short quiet period (2 s) and a fast sweep (0.1 s). Each round sends a
new 176x256x256 series (fresh UIDs, its own noise seed) with ``/usr/bin/storescu`` on one
association, then polls ``GET /api/v1/series/{uid}`` every 20 ms from storescu's exit until the
status is ``done``. The latency reported is that interval minus the quiet period, which is
configuration, not work. One untimed series goes first so the worker has loaded what it loads
once (imports, metric suites); its latency is kept in the result as ``cold``.

The REST ``timings`` split each round into: sweep lag (quiet period over to ``queued_at``), queue
wait (``queued_at`` to ``started_at``: broker and worker pick-up), assessment (``started_at`` to
``finished_at``) and visibility (``finished_at`` to the poll that saw ``done``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from qcgate.bench.common import (
    environment,
    markdown_table,
    progress,
    publish,
    running_qcgate,
    send_concurrently,
    summary,
    write_series_files,
)
from qcgate.harness.peers import QCGate
from qcgate.synthetic.volumes import add_rician_noise, phantom_volume

SHAPE = (176, 256, 256)
QUIET_PERIOD_S = 2.0
SWEEP_INTERVAL_S = 0.1
POLL_INTERVAL_S = 0.02
NOISE_FRACTION = 0.02  # noise sigma as a fraction of the brightest tissue: a good clinical scan
GOAL_S = 3.0
FINAL_STATUSES = ("done", "failed", "not_assessable")
PHASES = ("sweep_lag_s", "queue_wait_s", "assessment_s", "visible_s")


def wait_until_final(client: httpx.Client, series_uid: str, timeout: float) -> tuple[float, dict[str, Any]]:
    """Poll the series every 20 ms; returns (monotonic time it was first seen final, its document)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/series/{series_uid}")
        seen = time.monotonic()
        if response.status_code == 200 and response.json()["status"] in FINAL_STATUSES:
            return seen, response.json()
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"series {series_uid} not assessed within {timeout} s")


def one_round(gate: QCGate, client: httpx.Client, volume: np.ndarray, directory: Path) -> dict[str, Any]:
    series = write_series_files(volume, directory, f"bench e2e {directory.name}")
    send_s = send_concurrently(gate.dicom_port, [series.paths])
    exited, exited_wall = time.monotonic(), datetime.now(UTC)
    seen, document = wait_until_final(client, series.series_instance_uid, timeout=120 + QUIET_PERIOD_S)
    if document["status"] != "done":
        raise RuntimeError(f"series ended {document['status']}: {document['reasons']}")
    seen_wall = exited_wall.timestamp() + (seen - exited)
    at = {
        name: datetime.fromisoformat(value).timestamp()
        for name, value in document["timings"].items()
        if name.endswith("_at") and value
    }
    return {
        "series_instance_uid": series.series_instance_uid,
        "send_s": send_s,
        "latency_s": seen - exited - QUIET_PERIOD_S,
        "exit_after_last_received_s": exited_wall.timestamp() - at["last_received_at"],
        "sweep_lag_s": at["queued_at"] - at["last_received_at"] - QUIET_PERIOD_S,
        "queue_wait_s": at["started_at"] - at["queued_at"],
        "assessment_s": at["finished_at"] - at["started_at"],
        "visible_s": seen_wall - at["finished_at"],
        "flag": document["flag"],
    }


def run(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-e2e-") as temp:
        root = Path(temp)
        progress(f"building a {SHAPE} phantom")
        anatomy = phantom_volume(SHAPE, seed=0)
        sigma = float(np.percentile(anatomy, 99)) * NOISE_FRACTION
        progress("starting qcgate serve")
        settings = {
            "quiet_period_s": str(QUIET_PERIOD_S),
            "sweep_interval_s": str(SWEEP_INTERVAL_S),
            "requeue_after_s": "600",
        }
        with (
            running_qcgate("serve", root / "qcgate", **settings) as gate,
            httpx.Client(base_url=gate.base_url, timeout=10) as client,
        ):
            results = []
            for index in range(rounds + 1):
                volume = add_rician_noise(anatomy, sigma, seed=index)
                result = one_round(gate, client, volume, root / f"series-{index}")
                label = "cold (not counted)" if index == 0 else f"round {index}/{rounds}"
                progress(
                    f"{label}: {result['latency_s']:.2f} s after the quiet period "
                    f"(assessment {result['assessment_s']:.2f} s, flag {result['flag']})"
                )
                results.append(result)
    cold, warm = results[0], results[1:]
    latency = summary([r["latency_s"] for r in warm])
    return {
        "environment": environment(),
        "settings": {
            "shape": list(SHAPE),
            "rounds": rounds,
            "quiet_period_s": QUIET_PERIOD_S,
            "sweep_interval_s": SWEEP_INTERVAL_S,
            "poll_interval_s": POLL_INTERVAL_S,
            "noise_fraction": NOISE_FRACTION,
        },
        "cold": cold,
        "rounds": warm,
        "summary": {
            "latency_s": latency,
            "send_s": summary([r["send_s"] for r in warm]),
            **{phase: summary([r[phase] for r in warm]) for phase in PHASES},
            "goal_s": GOAL_S,
            "meets_goal": latency["median"] < GOAL_S,
        },
    }


def report(result: dict[str, Any]) -> str:
    s, settings = result["summary"], result["settings"]
    names = {
        "latency_s": "last C-STORE response to REST done, minus quiet period",
        "sweep_lag_s": "quiet period over to queued (sweeper)",
        "queue_wait_s": "queued to worker started (broker)",
        "assessment_s": "worker assessment (finished_at - started_at)",
        "visible_s": "result stored to seen over REST",
        "send_s": "sending the series (storescu, 1 association)",
    }
    rows = [[label, f"{s[key]['median']:.2f}", f"{s[key]['max']:.2f}"] for key, label in names.items()]
    rows.append(["cold first series, latency (not in the median)", f"{result['cold']['latency_s']:.2f}", ""])
    verdict = "met" if s["meets_goal"] else "missed"
    title = (
        f"End to end, {'x'.join(map(str, settings['shape']))} series, {settings['rounds']} rounds, "
        f"quiet period {settings['quiet_period_s']} s; goal < {s['goal_s']:.0f} s: {verdict}\n\n"
    )
    return title + markdown_table(["seconds", "median", "max"], rows)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = result["rounds"]
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(rounds) + 1.5))
    left = np.zeros(len(rounds))
    for phase in PHASES:
        widths = np.array([max(r[phase], 0.0) for r in rounds])
        axes.barh(range(len(rounds)), widths, left=left, label=phase.removesuffix("_s").replace("_", " "))
        left += widths
    axes.axvline(result["summary"]["goal_s"], color="black", linestyle="--", label="goal")
    axes.set_yticks(range(len(rounds)), [f"round {i + 1}" for i in range(len(rounds))])
    axes.set_xlabel("seconds after the quiet period")
    axes.set_title("Last C-STORE to result over REST")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.end_to_end", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=5, help="measured series, after one cold one (5)")
    parser.add_argument("--name", default="end_to_end", help="result name under bench/out (end_to_end)")
    args = parser.parse_args(argv)
    result = run(args.rounds)
    return publish(args.name, result, plot, report)


if __name__ == "__main__":
    sys.exit(main())
