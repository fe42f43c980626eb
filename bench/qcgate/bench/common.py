"""What both benchmarks share: series on disk, qcgate and storescu processes, statistics and output.

Peers come from :mod:`qcgate.harness.peers` (the same qcgate wrapper and DCMTK settings the tests use), so a
benchmark measures exactly what the tests exercise. Progress goes to stderr; stdout carries only
the markdown result, so ``python -m qcgate.bench.ingest > result.md`` keeps a clean table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qcgate.bench.environment import environment as base_environment
from qcgate.harness.peers import DCMTK_STORESCU, QCGate, dcmtk_env, free_port, qcgate_env
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series

OUT_DIR = Path(__file__).resolve().parents[2] / "out"  # bench/out
SEND_TIMEOUT_S = 600.0
_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One timestamped line on stderr, flushed at once so a long run shows where it is."""
    sys.stderr.write(f"[{time.monotonic() - _STARTED:7.1f} s] {message}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class SeriesFiles:
    """One series written as Part 10 files, ready for storescu."""

    series_instance_uid: str
    paths: list[Path]
    total_bytes: int


def write_series_files(volume: np.ndarray, directory: Path, description: str) -> SeriesFiles:
    """``volume`` (S, R, C) as one MR series with fresh UIDs, one file per slice in ``directory``."""
    datasets = mr_series_datasets(volume, series_description=description, spacing_mm=(1.0, 1.0, 1.0))
    paths = write_series(datasets, directory)
    return SeriesFiles(str(datasets[0].SeriesInstanceUID), paths, sum(p.stat().st_size for p in paths))


@contextmanager
def running_qcgate(command: str, data_dir: Path, **settings: str) -> Iterator[QCGate]:
    """``qcgate <command>`` on free ports with its own data dir, ready (C-ECHO, HTTP) when yielded.

    On exit it is stopped as the tests stop it (SIGTERM to its process group), then anything left in
    that group is killed: ``serve`` can leave its Celery worker behind, hung in a warm shutdown, and
    a benchmark must not leave processes consuming a deleted data dir.
    """
    dicom_port, http_port = free_port(), free_port()
    env = qcgate_env(data_dir, dicom_port, http_port, **settings)
    gate = QCGate(data_dir, dicom_port, http_port, env, [[command]])
    try:
        yield gate.start()
    finally:
        groups = [process.pid for process in gate.processes]  # each started with start_new_session
        gate.stop()
        for group in groups:
            with suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def send_concurrently(
    port: int, groups: Sequence[Sequence[Path]], called_ae: str = "QCGATE", extra: Sequence[str] = ()
) -> float:
    """Send each group of files on its own /usr/bin/storescu association, all at once.

    Returns the seconds from starting the first storescu to the exit of the last; raises
    ``RuntimeError`` with storescu's output if any of them failed.
    """
    command = [DCMTK_STORESCU, "-aet", "BENCH", "-aec", called_ae, *extra, "127.0.0.1", str(port)]
    env = dcmtk_env()
    clock = time.perf_counter()
    senders = [
        subprocess.Popen(
            [*command, *map(str, group)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for group in groups
    ]
    outputs = [sender.communicate(timeout=SEND_TIMEOUT_S)[0] for sender in senders]
    elapsed = time.perf_counter() - clock
    for sender, output in zip(senders, outputs, strict=True):
        if sender.returncode != 0:
            raise RuntimeError(
                f"storescu exited with {sender.returncode}:\n{output.decode(errors='replace')}"
            )
    return elapsed


def split_evenly(items: Sequence[Path], parts: int) -> list[list[Path]]:
    """``parts`` contiguous groups whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return groups


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum and maximum of repeated measurements (the median is what we report)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    """The machine, plus the DCMTK version that the ingest and end-to-end comparisons depend on."""
    dcmtk = subprocess.run([DCMTK_STORESCU, "--version"], capture_output=True, text=True, check=False)
    return {**base_environment(), "dcmtk": dcmtk.stdout.splitlines()[0] if dcmtk.stdout else "unknown"}


def save_result(name: str, payload: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def publish(
    name: str,
    result: dict[str, Any],
    plot: Callable[[dict[str, Any], Path], None],
    report: Callable[[dict[str, Any]], str],
) -> int:
    """Save the JSON, draw the PNG beside it and print the markdown table; the end of every benchmark."""
    json_path = save_result(name, result)
    plot(result, json_path.with_suffix(".png"))
    progress(f"wrote {json_path} and {json_path.with_suffix('.png').name}")
    sys.stdout.write(report(result))
    return 0


@contextmanager
def drawn_to(path: Path, figsize: tuple[float, float]) -> Iterator[Any]:
    """The axes of one new figure, laid out and written to ``path`` (PNG, 100 dpi) when the block
    ends; matplotlib's Agg backend, so no screen is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=figsize)
    try:
        yield axes
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)


def synthetic_parser(description: str, images: int, images_help: str) -> argparse.ArgumentParser:
    """The command line every synthetic-slice benchmark starts from: ``--images`` (how many,
    ``images_help`` says of what) and ``--jobs`` (worker processes, 2: this machine's cores)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--images", type=int, default=images, help=images_help)
    parser.add_argument("--jobs", type=int, default=2)
    return parser
