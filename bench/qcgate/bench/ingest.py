"""Ingest throughput: instances/s and MB/s into qcgate against DCMTK's storescp, same files, same sender.

One synthetic series (default 400 instances of 256x256 uint16, about 128 KB each) is written once
and sent with ``/usr/bin/storescu`` on 1 and on 4 simultaneous associations (4 storescu processes,
a quarter of the files each). Every measurement gets a fresh receiver and an empty folder, so each
one stores new instances rather than replacing old ones. Rounds interleave the receivers (their
order alternates) so that machine noise hits both.

The comparison is made fair where it can be, and the remaining differences are listed in
docs/benchmarks.md: storescp runs with ``--fork`` (one process per association, so four
associations are received in parallel; without it storescp serves them one after another) and
with its largest receive PDU (``-pdu 131072``; qcgate offers 1 MiB). qcgate fsyncs every instance
and its directory and records it in SQLite before answering; storescp does not fsync.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qcgate.bench.common import (
    SeriesFiles,
    environment,
    markdown_table,
    progress,
    publish,
    running_qcgate,
    send_concurrently,
    split_evenly,
    summary,
    write_series_files,
)
from qcgate.harness.peers import c_echo, dcmtk_env, free_port
from qcgate.synthetic.volumes import phantom_volume

DCMTK_STORESCP = "/usr/bin/storescp"
STORESCP_OPTIONS = ["--fork", "-pdu", "131072", "-dhl", "-aet", "QCGATE"]
GOALS = {1: 0.5, 4: 0.8}  # qcgate instances/s as a fraction of storescp's
RECEIVERS = ("qcgate", "dcmtk")


@contextmanager
def dcmtk_receiver(directory: Path) -> Iterator[int]:
    """storescp on a free port writing into ``directory``; yields the port once it answers C-ECHO."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [DCMTK_STORESCP, *STORESCP_OPTIONS, "-od", str(directory), str(port)],
        env=dcmtk_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while c_echo(port) != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"storescp did not start (exit code {process.poll()})")
            time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@contextmanager
def qcgate_receiver(command: str, data_dir: Path) -> Iterator[tuple[int, Path]]:
    """qcgate with scoring kept out of the way (an hour's quiet period); yields (port, spool)."""
    with running_qcgate(command, data_dir, quiet_period_s="3600", requeue_after_s="7200") as gate:
        yield gate.dicom_port, data_dir / "spool"


def measure(
    receiver: str, associations: int, series: SeriesFiles, warmup: SeriesFiles, scratch: Path, command: str
) -> float:
    """Seconds to send the whole series to a fresh receiver; checks every instance was stored.

    One instance of another series goes first, untimed, so the measurement sees a receiver that
    has stored before (a long-running server) rather than one paying its first-use costs.
    """
    groups = split_evenly(series.paths, associations)
    if receiver == "qcgate":
        with qcgate_receiver(command, scratch / "qcgate") as (port, spool):
            send_concurrently(port, [warmup.paths])
            seconds = send_concurrently(port, groups)
        stored = len(list(spool.rglob("*.dcm")))
    else:
        with dcmtk_receiver(scratch / "storescp") as port:
            send_concurrently(port, [warmup.paths])
            seconds = send_concurrently(port, groups)
        stored = sum(1 for entry in (scratch / "storescp").iterdir() if entry.is_file())
    expected = len(series.paths) + len(warmup.paths)
    if stored != expected:
        raise RuntimeError(f"{receiver} stored {stored} of {expected} instances")
    return seconds


def run(instances: int, rounds: int, association_counts: list[int], command: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-ingest-") as temp:
        root = Path(temp)
        progress(f"writing {instances} instances of 256x256 uint16")
        series = write_series_files(phantom_volume((instances, 256, 256)), root / "series", "bench ingest")
        warmup = write_series_files(phantom_volume((8, 256, 256))[:1], root / "warmup", "bench warm-up")
        megabytes = series.total_bytes / 1e6
        progress(f"{megabytes:.1f} MB written; {rounds} rounds x {association_counts} associations")
        runs = []
        for round_index in range(rounds):
            order = RECEIVERS if round_index % 2 == 0 else RECEIVERS[::-1]
            for associations in association_counts:
                for receiver in order:
                    scratch = Path(tempfile.mkdtemp(dir=root, prefix=f"{receiver}-"))
                    seconds = measure(receiver, associations, series, warmup, scratch, command)
                    shutil.rmtree(scratch)
                    runs.append(
                        {
                            "round": round_index,
                            "receiver": receiver,
                            "associations": associations,
                            "seconds": seconds,
                            "instances_per_s": instances / seconds,
                            "mb_per_s": megabytes / seconds,
                        }
                    )
                    progress(
                        f"round {round_index + 1}/{rounds} {receiver:6} x{associations}: "
                        f"{instances / seconds:7.1f} instances/s {megabytes / seconds:6.1f} MB/s"
                    )
    return {
        "environment": environment(),
        "settings": {
            "instances": instances,
            "rows_columns": [256, 256],
            "bytes": series.total_bytes,
            "rounds": rounds,
            "qcgate_command": command,
            "storescp_options": STORESCP_OPTIONS,
            "megabyte": "10^6 bytes",
        },
        "runs": runs,
        "summary": summarise(runs, association_counts),
    }


def summarise(runs: list[dict[str, Any]], association_counts: list[int]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for associations in association_counts:
        entry: dict[str, Any] = {}
        for receiver in RECEIVERS:
            mine = [r for r in runs if r["receiver"] == receiver and r["associations"] == associations]
            entry[receiver] = {
                "instances_per_s": summary([r["instances_per_s"] for r in mine]),
                "mb_per_s": summary([r["mb_per_s"] for r in mine]),
            }
        ratio = entry["qcgate"]["instances_per_s"]["median"] / entry["dcmtk"]["instances_per_s"]["median"]
        goal = GOALS.get(associations)
        entry |= {"ratio": ratio, "goal": goal, "meets_goal": None if goal is None else ratio >= goal}
        result[str(associations)] = entry
    return result


def report(result: dict[str, Any]) -> str:
    rows = []
    for associations, entry in result["summary"].items():
        q, d = entry["qcgate"], entry["dcmtk"]
        goal = (
            ""
            if entry["goal"] is None
            else f"{entry['goal']:.1f}x ({'met' if entry['meets_goal'] else 'missed'})"
        )
        rows.append(
            [
                associations,
                f"{q['instances_per_s']['median']:.0f}",
                f"{q['mb_per_s']['median']:.1f}",
                f"{d['instances_per_s']['median']:.0f}",
                f"{d['mb_per_s']['median']:.1f}",
                f"{entry['ratio']:.2f}x",
                goal,
            ]
        )
    headers = [
        "associations",
        "qcgate inst/s",
        "qcgate MB/s",
        "storescp inst/s",
        "storescp MB/s",
        "qcgate/storescp",
        "goal",
    ]
    settings = result["settings"]
    title = (
        f"Ingest, {settings['instances']} instances of 256x256 uint16 ({settings['bytes'] / 1e6:.1f} MB), "
        f"median of {settings['rounds']} rounds, qcgate {settings['qcgate_command']}\n\n"
    )
    return title + markdown_table(headers, rows)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = list(result["summary"])
    width = 0.38
    figure, axes = plt.subplots(figsize=(6, 4))
    bars = ((-width / 2, "qcgate", "qcgate"), (width / 2, "dcmtk", "storescp"))
    for offset, receiver, label in bars:
        medians = [result["summary"][c][receiver]["instances_per_s"]["median"] for c in counts]
        positions = [index + offset for index in range(len(counts))]
        axes.bar(positions, medians, width, label=label)
        for position, count in zip(positions, counts, strict=True):
            values = [
                r["instances_per_s"]
                for r in result["runs"]
                if r["receiver"] == receiver and str(r["associations"]) == count
            ]
            axes.scatter([position] * len(values), values, color="black", s=8, zorder=3)
    for index, count in enumerate(counts):
        entry = result["summary"][count]
        if entry["goal"] is not None:
            target = entry["goal"] * entry["dcmtk"]["instances_per_s"]["median"]
            axes.hlines(target, index - width, index, colors="black", linestyles="dashed")
        top = max(entry[r]["instances_per_s"]["max"] for r in RECEIVERS)
        axes.annotate(
            f"{entry['ratio']:.2f}x", (index, top), xytext=(0, 6), textcoords="offset points", ha="center"
        )
    axes.set_ylim(top=axes.get_ylim()[1] * 1.1)
    axes.set_xticks(range(len(counts)), [f"{c} association{'s' if c != '1' else ''}" for c in counts])
    axes.set_ylabel("instances/s (bars: median, dots: rounds)")
    axes.set_title("C-STORE ingest, 256x256 uint16 (dashed: qcgate goal)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.ingest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--instances", type=int, default=400, help="instances in the series (400)")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of every configuration (5)")
    parser.add_argument("--associations", type=int, nargs="+", default=[1, 4], help="counts to compare (1 4)")
    parser.add_argument("--command", choices=("scp", "serve"), default="scp", help="qcgate command (scp)")
    parser.add_argument("--name", default="ingest", help="result name under bench/out (ingest)")
    args = parser.parse_args(argv)
    result = run(args.instances, args.rounds, args.associations, args.command)
    return publish(args.name, result, plot, report)


if __name__ == "__main__":
    sys.exit(main())
