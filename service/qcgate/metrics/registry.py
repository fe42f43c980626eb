"""Which metric suites a worker runs: the classic measures, plus one learned ONNX metric per model
listed in the shipped ``qcgate/contract/onnx/manifest.json`` (none until models are trained)."""

from __future__ import annotations

from qcgate.core.settings import Settings
from qcgate.metrics.base import MetricSuite
from qcgate.metrics.classic import ClassicMetrics
from qcgate.metrics.learned import default_threads, load_learned_suites


def load_suites(settings: Settings) -> list[MetricSuite]:
    """Create every suite once per worker process (ONNX sessions are expensive to build).

    ONNX Runtime threads are the worker's cores shared among ``settings.worker_concurrency``
    processes, so concurrent workers do not oversubscribe the CPU.
    """
    threads = default_threads(settings.worker_concurrency)
    return [ClassicMetrics(), *load_learned_suites(threads=threads)]
