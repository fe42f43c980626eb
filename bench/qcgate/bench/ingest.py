"""Ingest throughput: qcgate against DCMTK's storescp, Orthanc and a bare fsyncing pynetdicom SCP.

One synthetic series (default 400 instances of 256x256 uint16, about 133 KB each) is written once
and sent with ``/usr/bin/storescu`` on 1, 4 and 8 simultaneous associations (that many storescu
processes, a contiguous share of the files each). Receivers, each fresh with an empty folder for
every measurement, so each one stores new instances rather than replacing old ones:

* ``dcmtk``: storescp ``--fork`` (one process per association) with its largest PDU; no fsync;
* ``orthanc``: Debian's Orthanc with its default storage settings (it fsyncs its index);
* ``bare-pN``: :mod:`qcgate.harness.bare_scp`, N pynetdicom processes sharing the port, fsyncing
  each instance and its folder and doing nothing else: the library's ceiling;
* ``qcgate-pN``: ``qcgate scp`` with ``receiver_processes=N``: validation, fsynced write, database
  record, then the answer.

Rounds interleave the receivers (their order alternates) so that machine noise hits all of them.
For qcgate and the bare SCP the CPU time of the receiver's processes (user + system, from /proc)
is recorded per instance, so the rate on a machine with more cores can be predicted.
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
from dataclasses import dataclass
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
from qcgate.harness.orthanc_peer import OrthancPeer
from qcgate.harness.peers import c_echo, dcmtk_env, free_port
from qcgate.synthetic.volumes import phantom_volume

DCMTK_STORESCP = "/usr/bin/storescp"
STORESCP_OPTIONS = ["--fork", "-pdu", "131072", "-dhl", "-aet", "QCGATE"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# qcgate (its best process count) against each reference, by association count.
GOALS = {
    ("dcmtk", 1): 0.15,
    ("dcmtk", 4): 0.2,
    ("orthanc", 4): 1.5,
}
WARMUP_ATTEMPTS = 3
BARE_GOAL = 0.9  # qcgate-pN against bare-pN, every association count


@dataclass
class Receiver:
    """A receiver under measurement: its port, a way to count what it stored, its process group."""

    port: int
    stored: Any  # () -> int
    group: int | None = None  # process group whose CPU time is the receiver's


def group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of the live processes in process group ``group`` (Linux /proc)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone in between
        if int(fields[2]) == group:  # fields after "(comm)": state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


@contextmanager
def dcmtk_receiver(directory: Path) -> Iterator[Receiver]:
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
        _wait_for_echo(port, process)
        yield Receiver(port, lambda: sum(1 for entry in directory.iterdir() if entry.is_file()), process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@contextmanager
def bare_receiver(directory: Path, processes: int) -> Iterator[Receiver]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qcgate.harness.bare_scp",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--processes",
            str(processes),
        ],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_echo(port, process)
        time.sleep(0.5 * processes)  # the other processes bind after the first answers
        yield Receiver(port, lambda: len(list(directory.glob("*.dcm"))), process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@contextmanager
def orthanc_receiver(directory: Path) -> Iterator[Receiver]:
    with OrthancPeer(directory, ae_title="QCGATE") as orthanc:
        yield Receiver(orthanc.dicom_port, lambda: len(orthanc.client.instances()))


@contextmanager
def qcgate_receiver(data_dir: Path, processes: int) -> Iterator[Receiver]:
    """``qcgate scp`` with scoring kept out of the way (an hour's quiet period)."""
    with running_qcgate(
        "scp",
        data_dir,
        quiet_period_s="3600",
        requeue_after_s="7200",
        receiver_processes=str(processes),
        max_associations_per_address="64",  # every sender is 127.0.0.1 here
        max_associations="64",
    ) as gate:
        time.sleep(1.0 * (processes - 1))  # the extra receivers start after the first answers
        yield Receiver(
            gate.dicom_port, lambda: len(list((data_dir / "spool").rglob("*.dcm"))), gate.processes[0].pid
        )


def _wait_for_echo(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while c_echo(port) != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"receiver did not start (exit code {process.poll()})")
        time.sleep(0.1)


def _receiver(name: str, scratch: Path) -> Any:
    kind, _, processes = name.partition("-p")
    if kind == "dcmtk":
        return dcmtk_receiver(scratch / "storescp")
    if kind == "orthanc":
        return orthanc_receiver(scratch / "orthanc")
    if kind == "bare":
        return bare_receiver(scratch / "bare", int(processes))
    return qcgate_receiver(scratch / "qcgate", int(processes))


def measure(
    name: str, associations: int, series: SeriesFiles, warmup: SeriesFiles, scratch: Path
) -> tuple[float, float | None]:
    """Seconds to send the whole series to a fresh receiver and its CPU seconds (None where not read);
    checks every instance was stored.

    One instance of another series goes first, untimed, so the measurement sees a receiver that
    has stored before (a long-running server) rather than one paying its first-use costs.
    """
    groups = split_evenly(series.paths, associations)
    with _receiver(name, scratch) as receiver:
        for attempt in range(1, WARMUP_ATTEMPTS + 1):  # untimed: a receiver still starting may refuse it
            try:
                send_concurrently(receiver.port, [warmup.paths])
                break
            except RuntimeError as exc:
                progress(f"{name}: warm-up attempt {attempt} failed: {exc}")
                if attempt == WARMUP_ATTEMPTS:
                    raise
                time.sleep(1)
        cpu_before = None if receiver.group is None else group_cpu_seconds(receiver.group)
        seconds = send_concurrently(receiver.port, groups)
        cpu = None if receiver.group is None else group_cpu_seconds(receiver.group) - cpu_before
        stored = receiver.stored()
    expected = len(series.paths) + len(warmup.paths)
    if stored != expected:
        raise RuntimeError(f"{name} stored {stored} of {expected} instances")
    return seconds, cpu


def receiver_names(processes: list[int]) -> list[str]:
    return ["dcmtk", "orthanc", *(f"bare-p{n}" for n in processes), *(f"qcgate-p{n}" for n in processes)]


def run(instances: int, rounds: int, association_counts: list[int], processes: list[int]) -> dict[str, Any]:
    names = receiver_names(processes)
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-ingest-") as temp:
        root = Path(temp)
        progress(f"writing {instances} instances of 256x256 uint16")
        series = write_series_files(phantom_volume((instances, 256, 256)), root / "series", "bench ingest")
        warmup = write_series_files(phantom_volume((8, 256, 256))[:1], root / "warmup", "bench warm-up")
        megabytes = series.total_bytes / 1e6
        progress(f"{megabytes:.1f} MB written; {rounds} rounds x {association_counts} associations x {names}")
        runs = []
        for round_index in range(rounds):
            order = names if round_index % 2 == 0 else names[::-1]
            for associations in association_counts:
                for name in order:
                    scratch = Path(tempfile.mkdtemp(dir=root, prefix=f"{name}-"))
                    seconds, cpu = measure(name, associations, series, warmup, scratch)
                    shutil.rmtree(scratch, ignore_errors=True)
                    runs.append(
                        {
                            "round": round_index,
                            "receiver": name,
                            "associations": associations,
                            "seconds": seconds,
                            "instances_per_s": instances / seconds,
                            "mb_per_s": megabytes / seconds,
                            "cpu_ms_per_instance": None if cpu is None else 1000 * cpu / instances,
                        }
                    )
                    progress(
                        f"round {round_index + 1}/{rounds} {name:10} x{associations}: "
                        f"{instances / seconds:7.1f} instances/s {megabytes / seconds:6.1f} MB/s"
                    )
    return {
        "environment": environment(),
        "settings": {
            "instances": instances,
            "rows_columns": [256, 256],
            "bytes": series.total_bytes,
            "rounds": rounds,
            "associations": association_counts,
            "processes": processes,
            "storescp_options": STORESCP_OPTIONS,
            "megabyte": "10^6 bytes",
        },
        "runs": runs,
        "summary": summarise(runs, association_counts, names),
    }


def summarise(runs: list[dict[str, Any]], association_counts: list[int], names: list[str]) -> dict[str, Any]:
    """Medians per receiver and association count, and the goals: qcgate's best process count
    against storescp and Orthanc, and each qcgate-pN against bare-pN."""
    result: dict[str, Any] = {}
    for associations in association_counts:
        entry: dict[str, Any] = {"receivers": {}}
        for name in names:
            mine = [r for r in runs if r["receiver"] == name and r["associations"] == associations]
            cpu = [r["cpu_ms_per_instance"] for r in mine if r["cpu_ms_per_instance"] is not None]
            entry["receivers"][name] = {
                "instances_per_s": summary([r["instances_per_s"] for r in mine]),
                "mb_per_s": summary([r["mb_per_s"] for r in mine]),
                "cpu_ms_per_instance": summary(cpu) if cpu else None,
            }
        rate = {name: entry["receivers"][name]["instances_per_s"]["median"] for name in names}
        qcgate = {name: value for name, value in rate.items() if name.startswith("qcgate-")}
        best = max(qcgate, key=lambda name: qcgate[name])
        goals = []
        for reference in ("dcmtk", "orthanc"):
            goal = GOALS.get((reference, associations))
            ratio = qcgate[best] / rate[reference]
            goals.append(
                {
                    "qcgate": best,
                    "against": reference,
                    "ratio": ratio,
                    "goal": goal,
                    "met": None if goal is None else ratio >= goal,
                }
            )
        for name in qcgate:
            bare = name.replace("qcgate-", "bare-")
            ratio = qcgate[name] / rate[bare]
            goals.append(
                {
                    "qcgate": name,
                    "against": bare,
                    "ratio": ratio,
                    "goal": BARE_GOAL,
                    "met": ratio >= BARE_GOAL,
                }
            )
        entry["goals"] = goals
        result[str(associations)] = entry
    return result


def report(result: dict[str, Any]) -> str:
    settings = result["settings"]
    names = receiver_names(settings["processes"])
    rows = []
    for associations, entry in result["summary"].items():
        for name in names:
            numbers = entry["receivers"][name]
            cpu = numbers["cpu_ms_per_instance"]
            rows.append(
                [
                    associations,
                    name,
                    f"{numbers['instances_per_s']['median']:.0f}",
                    f"{numbers['mb_per_s']['median']:.1f}",
                    "" if cpu is None else f"{cpu['median']:.2f}",
                ]
            )
    goal_rows = []
    for associations, entry in result["summary"].items():
        for goal in entry["goals"]:
            verdict = (
                "" if goal["goal"] is None else f"{goal['goal']:.2f}x: {'met' if goal['met'] else 'missed'}"
            )
            goal_rows.append(
                [associations, goal["qcgate"], goal["against"], f"{goal['ratio']:.2f}x", verdict]
            )
    title = (
        f"Ingest, {settings['instances']} instances of 256x256 uint16 ({settings['bytes'] / 1e6:.1f} MB), "
        f"median of {settings['rounds']} interleaved rounds\n\n"
    )
    return (
        title
        + markdown_table(["associations", "receiver", "inst/s", "MB/s", "receiver CPU ms/instance"], rows)
        + "\n"
        + markdown_table(["associations", "qcgate", "against", "ratio", "goal"], goal_rows)
    )


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = receiver_names(result["settings"]["processes"])
    counts = list(result["summary"])
    width = 0.8 / len(names)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for index, name in enumerate(names):
        offset = (index - (len(names) - 1) / 2) * width
        medians = [result["summary"][c]["receivers"][name]["instances_per_s"]["median"] for c in counts]
        positions = [position + offset for position in range(len(counts))]
        axes.bar(positions, medians, width, label=name)
        for position, count in zip(positions, counts, strict=True):
            values = [
                r["instances_per_s"]
                for r in result["runs"]
                if r["receiver"] == name and str(r["associations"]) == count
            ]
            axes.scatter([position] * len(values), values, color="black", s=6, zorder=3)
    axes.set_yscale("log")
    axes.set_xticks(range(len(counts)), [f"{c} association{'s' if c != '1' else ''}" for c in counts])
    axes.set_ylabel("instances/s, log scale (bars: median, dots: rounds)")
    axes.set_title("C-STORE ingest, 256x256 uint16")
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.ingest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--instances", type=int, default=400, help="instances in the series (400)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of every configuration (3)")
    parser.add_argument(
        "--associations", type=int, nargs="+", default=[1, 4, 8], help="counts to compare (1 4 8)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=list(range(1, (os.cpu_count() or 1) + 1)),
        help="receiver process counts for qcgate and the bare SCP (1..cores)",
    )
    parser.add_argument("--name", default="ingest", help="result name under bench/out (ingest)")
    args = parser.parse_args(argv)
    result = run(args.instances, args.rounds, args.associations, args.processes)
    return publish(args.name, result, plot, report)


if __name__ == "__main__":
    sys.exit(main())
