"""Which metric suites a worker runs: the classic measures, plus one learned ONNX metric per model
listed in the shipped ``qcgate/contract/onnx/manifest.json`` (none until models are trained) and one
per site model in ``site_models_dir``."""

from __future__ import annotations

from qcgate.core.settings import Settings
from qcgate.metrics.base import MetricSuite
from qcgate.metrics.batching import BatchPolicy
from qcgate.metrics.classic import ClassicMetrics
from qcgate.metrics.learned import default_threads, load_learned_suites, session_providers


def load_suites(settings: Settings, *, batched: bool = False) -> list[MetricSuite]:
    """Create every suite once per worker process (ONNX sessions are expensive to build).

    ONNX Runtime threads are the worker's cores shared among ``settings.worker_concurrency``
    processes, so concurrent workers do not oversubscribe the CPU. ``batched`` (a ``gpu`` worker:
    one process, several series at once on threads) gives every learned metric a batcher that packs
    the windows of those series into shared batches, and the process all the cores.
    """
    batching = BatchPolicy(settings.gpu_batch_max, settings.gpu_batch_wait_ms / 1000) if batched else None
    learned = load_learned_suites(
        threads=default_threads(1 if batched else settings.worker_concurrency),
        providers=session_providers(settings.onnx_providers),
        fp16=settings.onnx_fp16,
        batching=batching,
        site_models_dir=settings.site_models_dir,
    )
    return [ClassicMetrics(), *learned]
