"""A worker-like process: the Celery worker's context, one series scored repeatedly, its peak memory.

``python -m qcgate.bench.learned_worker SERIES_DIR --repeats N [--manifest PATH]`` builds its metric suites
exactly as a ``qcgate`` worker does at start (``create_celery(settings)``, then the runtime's
``context()``, which calls :func:`qcgate.metrics.registry.load_suites`), then calls
:func:`qcgate.assessment.pipeline.assess_series` on the series as
:func:`qcgate.worker.assess.assess_queued_series` does: one cold round, then ``N`` measured ones.
It prints one JSON object on stdout: seconds per
round split per suite, and the peak resident set size (``ru_maxrss``) after imports, after loading
the suites, after the cold round and at the end. It imports neither torch nor the other benchmark
modules, so its memory is a worker's.

``--manifest`` scores with another manifest than the shipped one (random-weight models exported by
the benchmark): the registry reads its manifest from the installed package, so its lookup is
redirected for the one call that builds the context; every other step is the worker's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any
from unittest import mock

from qcgate.assessment.pipeline import assess_series
from qcgate.core.outcomes import SeriesStatus
from qcgate.core.settings import Settings
from qcgate.imaging.volume import Stack
from qcgate.metrics import learned
from qcgate.metrics.base import Algorithm, MetricResult, MetricSuite
from qcgate.worker.celery_app import create_celery

__all__ = ["TimedSuite", "measure_worker"]

_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


class TimedSuite:
    """A metric suite that scores as the one it wraps and adds up the seconds spent in it."""

    def __init__(self, suite: MetricSuite) -> None:
        self.suite = suite
        self.name = suite.name
        self.version = suite.version
        self.seconds = 0.0

    @property
    def algorithm(self) -> Algorithm | None:
        return self.suite.algorithm

    def evaluate(self, stack: Stack) -> list[MetricResult]:
        clock = time.perf_counter()
        try:
            return self.suite.evaluate(stack)
        finally:
            self.seconds += time.perf_counter() - clock


def measure_worker(series_dir: Path, repeats: int, manifest: Path | None = None) -> dict[str, Any]:
    """Run the worker-like process on ``series_dir`` and return its JSON (its progress goes to stderr).

    It is started through a small intermediate Python process: Linux carries the peak RSS across
    ``exec``, and a child exec'd straight from the benchmark (Python spawns with vfork) would start
    with the benchmark's own, torch-laden peak as its ``ru_maxrss``. The intermediate's children
    inherit only its few MiB.
    """
    worker = [sys.executable, "-m", "qcgate.bench.learned_worker", str(series_dir), "--repeats", str(repeats)]
    command = [sys.executable, "-c", _LAUNCHER, *worker]
    if manifest is not None:
        command += ["--manifest", str(manifest)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def high_water_mib() -> float | None:
    """The kernel's own peak RSS of this process image (``VmHWM``, reset by exec): a cross-check that
    ``ru_maxrss`` is the worker's and not inherited. None where ``/proc`` has no such line."""
    with suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


@contextmanager
def _manifest_at(manifest: Path) -> Iterator[None]:
    with mock.patch.object(learned, "default_manifest_path", return_value=manifest):
        yield


def worker_suites(settings: Settings, manifest: Path | None) -> list[MetricSuite]:
    """The suites of a worker's context, built the way a started worker builds it."""
    runtime = create_celery(settings).qcgate_runtime
    with _manifest_at(manifest) if manifest is not None else nullcontext():
        return list(runtime.context().suites)


def score_once(files: Sequence[Path], suites: Sequence[TimedSuite], settings: Settings) -> dict[str, Any]:
    """One ``assess_series`` call: total seconds, seconds per suite, the rest (reading, stacking, flags),
    and the peak RSS after it (a peak that keeps rising from series to series would be a leak)."""
    for suite in suites:
        suite.seconds = 0.0
    clock = time.perf_counter()
    assessment = assess_series(
        files,
        suites,
        settings.thresholds,
        limits=settings.verdict_limits,
        series_filter=settings.series_filter,
    )
    total = time.perf_counter() - clock
    if assessment.outcome is not SeriesStatus.DONE:
        raise RuntimeError(f"the benchmark series was not scored: {assessment.outcome} {assessment.reasons}")
    per_suite = {suite.name: suite.seconds for suite in suites}
    return {
        "total_s": total,
        "suites_s": per_suite,
        "other_s": total - sum(per_suite.values()),
        "flag": assessment.flag.value if assessment.flag else None,
        "peak_rss_mib": peak_rss_mib(),
    }


def _say(message: str) -> None:
    sys.stderr.write(f"    worker {os.getpid()}: {message}\n")
    sys.stderr.flush()


def run(series_dir: Path, repeats: int, manifest: Path | None) -> dict[str, Any]:
    """Load as a worker, score the cold round and ``repeats`` more, noting the peak RSS between steps."""
    rss = {"imported": peak_rss_mib()}
    files = sorted(series_dir.glob("*.dcm"))
    with tempfile.TemporaryDirectory(prefix="qcgate-bench-worker-") as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        clock = time.perf_counter()
        suites = [TimedSuite(suite) for suite in worker_suites(settings, manifest)]
        load_s, rss["loaded"] = time.perf_counter() - clock, peak_rss_mib()
        names = ", ".join(suite.name for suite in suites)
        _say(f"suites {names} loaded in {load_s:.1f} s, peak {rss['loaded']:.0f} MiB")
        cold = score_once(files, suites, settings)
        rss["cold_series"] = peak_rss_mib()
        _say(f"cold series {cold['total_s']:.2f} s, peak {rss['cold_series']:.0f} MiB")
        rounds = []
        for index in range(repeats):
            rounds.append(score_once(files, suites, settings))
            _say(f"series {index + 1}/{repeats}: {rounds[-1]['total_s']:.2f} s")
        rss["scored"] = peak_rss_mib()
    return {
        "instances": len(files),
        "load_s": load_s,
        "suites": [suite.name for suite in suites],
        "ort_threads": learned.default_threads(settings.worker_concurrency),
        "worker_concurrency": settings.worker_concurrency,
        "torch_imported": "torch" in sys.modules,
        "cold": cold,
        "rounds": rounds,
        "peak_rss_mib": rss,
        "vm_hwm_mib": high_water_mib(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qcgate.bench.learned_worker", description=__doc__.splitlines()[0]
    )
    parser.add_argument("series_dir", type=Path, help="one MR series, *.dcm")
    parser.add_argument("--repeats", type=int, default=5, help="measured rounds after the cold one (5)")
    parser.add_argument(
        "--manifest", type=Path, help="manifest.json to score with (default: the shipped one)"
    )
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(run(args.series_dir, args.repeats, args.manifest)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
