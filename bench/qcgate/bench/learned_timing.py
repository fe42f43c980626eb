"""Timing the learned models on the service's own windows: ONNX Runtime against PyTorch eager, and
windows (slices or patches) per second and latency per batch over batch sizes on every provider
(the CPU, and CUDA where ONNX Runtime has it; a provider it lacks is reported "not measured").

Both runtimes get the same batch (smooth MR-like images from :func:`qcgate.export.onnx_export.smooth_images`,
normalised as the service normalises) of the shape the service feeds each model: its window for the
benchmark series' slices and :class:`~qcgate.metrics.learned.OnnxMetric`'s batch size. The machines
are noisy, so every round times one batch of each model in each runtime, the runtimes' order
alternating between rounds, and medians are compared. Two untimed runs of each come first (ONNX
Runtime sizes its memory arena on the first run, PyTorch its allocator caches).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from qcgate.bench.common import summary
from qcgate.bench.learned_models import ModelPair, service_window
from qcgate.export.onnx_export import smooth_images
from qcgate.metrics.learned import CPU, CUDA, OnnxMetric, bound_runner, load_learned_suites

__all__ = ["BACKENDS", "SWEEP_BATCHES", "SWEEP_PROVIDERS", "batch_sweep", "provider_sweep", "race"]

BACKENDS = ("onnxruntime", "torch")
SWEEP_BATCHES = (1, 2, 4, 8, 16, 32, 64)
SWEEP_PROVIDERS = (CPU, CUDA)
NOT_MEASURED = "not measured"
SATURATION = 0.95  # a batch "saturates" the provider from 95 % of the best throughput seen
WARM_UP_RUNS = 2
INPUT_SEED = 4_242  # any seed: the content barely matters to speed, only that it is MR-like

Progress = Callable[[str], None]


def race(
    pairs: Sequence[ModelPair], slice_shape: tuple[int, int], repeats: int, progress: Progress
) -> dict[str, dict[str, Any]]:
    """Per model: both runtimes' seconds per batch, windows per second, and ONNX Runtime's speed-up."""
    batches = {pair.name: _service_batch(pair.metric, slice_shape, pair.metric.batch_size) for pair in pairs}
    runners = {
        pair.name: {
            "onnxruntime": pair.onnx_runner(batches[pair.name]),
            "torch": pair.torch_runner(batches[pair.name]),
        }
        for pair in pairs
    }
    differences = {
        name: float(np.max(np.abs(backends["onnxruntime"]() - backends["torch"]())))
        for name, backends in runners.items()
    }
    for backends in runners.values():
        for runner in backends.values():
            for _ in range(WARM_UP_RUNS - 1):  # the difference above was the first run
                runner()
    samples: dict[str, dict[str, list[float]]] = {name: {b: [] for b in BACKENDS} for name in runners}
    for index in range(repeats):
        order = BACKENDS if index % 2 == 0 else BACKENDS[::-1]
        for name, backends in runners.items():
            for backend in order:
                samples[name][backend].append(_seconds(backends[backend]))
        progress(
            f"models round {index + 1}/{repeats}: " + "; ".join(_round_line(n, s) for n, s in samples.items())
        )
    return {
        pair.name: _comparison(pair, batches[pair.name], samples[pair.name], differences[pair.name])
        for pair in pairs
    }


def provider_sweep(
    manifest_path: Path,
    slice_shape: tuple[int, int],
    repeats: int,
    progress: Progress,
    *,
    threads: int | None = None,
    fp16: bool = False,
) -> dict[str, Any]:
    """:func:`batch_sweep` on each of :data:`SWEEP_PROVIDERS`; those ONNX Runtime lacks: not measured."""
    return {
        "batches": list(SWEEP_BATCHES),
        "providers": {
            provider: batch_sweep(
                manifest_path, slice_shape, repeats, progress, provider, threads=threads, fp16=fp16
            )
            for provider in SWEEP_PROVIDERS
        },
    }


def batch_sweep(
    manifest_path: Path,
    slice_shape: tuple[int, int],
    repeats: int,
    progress: Progress,
    provider: str = CUDA,
    *,
    threads: int | None = None,
    fp16: bool = False,
) -> dict[str, Any]:
    """Windows per second and milliseconds per batch (medians of ``repeats``) over
    :data:`SWEEP_BATCHES` on ``provider``, through the service's own binding, and the saturating batch.

    The CUDA provider is where the batch size is the main lever (with ``fp16`` the metric loads the
    fp16 file where its parity holds, as the service does with ``onnx_fp16``); the CPU provider runs
    the same code path. Where ONNX Runtime does not offer ``provider``: not measured, and why.
    """
    available = ort.get_available_providers()
    if provider not in available:
        return {
            "provider": provider,
            "skipped": f"{NOT_MEASURED}: ONNX Runtime offers no {provider} (it has {', '.join(available)})",
        }
    models = {}
    for metric in load_learned_suites(manifest_path, providers=[provider, CPU], threads=threads, fp16=fp16):
        models[metric.name] = _sweep(metric, slice_shape, repeats)
        progress(f"{provider} {metric.name}: saturates from batch {models[metric.name]['saturating_batch']}")
    return {"provider": provider, "batches": list(SWEEP_BATCHES), "saturation": SATURATION, "models": models}


def _sweep(metric: OnnxMetric, slice_shape: tuple[int, int], repeats: int) -> dict[str, Any]:
    images = _service_batch(metric, slice_shape, max(SWEEP_BATCHES))
    seconds = {size: _batch_seconds(metric, images[:size], repeats) for size in SWEEP_BATCHES}
    rates = {size: size / median for size, median in seconds.items()}
    best = max(rates.values())
    return {
        "providers": metric.providers,
        "precision": metric.precision,
        "window": list(images.shape[2:]),
        "windows_per_s": {str(size): rate for size, rate in rates.items()},
        "batch_ms": {str(size): median * 1e3 for size, median in seconds.items()},
        "saturating_batch": min(size for size, rate in rates.items() if rate >= SATURATION * best),
    }


def _service_batch(metric: OnnxMetric, slice_shape: tuple[int, int], size: int) -> np.ndarray:
    """(size, 1, *window) float32: the shape the service feeds ``metric`` for such slices."""
    return smooth_images((size, 1, *service_window(metric.entry.input, slice_shape)), seed=INPUT_SEED)


def _batch_seconds(metric: OnnxMetric, batch: np.ndarray, repeats: int) -> float:
    """Median seconds of one batch through the binding the service runs (:func:`bound_runner`)."""
    session = metric._session  # the service's own session: its options are part of what is measured
    names = metric.entry.input.tensor_name, metric.entry.output.tensor_name
    runner = bound_runner(session, *names)
    for _ in range(WARM_UP_RUNS):
        runner(batch)
    return statistics.median(_seconds(lambda: runner(batch)) for _ in range(repeats))


def _seconds(run: Callable[[], object]) -> float:
    clock = time.perf_counter()
    run()
    return time.perf_counter() - clock


def _round_line(name: str, samples: dict[str, list[float]]) -> str:
    ort_ms, torch_ms = (samples[backend][-1] * 1e3 for backend in BACKENDS)
    return f"{name} ORT {ort_ms:.0f} ms, torch {torch_ms:.0f} ms"


def _comparison(
    pair: ModelPair, batch: np.ndarray, samples: dict[str, list[float]], difference: float
) -> dict[str, Any]:
    seconds = {backend: summary(samples[backend]) for backend in BACKENDS}
    return {
        "weights": pair.weights,
        "kind": pair.metric.entry.input.kind,
        "input_shape": list(batch.shape),
        "providers": pair.metric.providers,
        **{f"{backend}_s": seconds[backend] for backend in BACKENDS},
        **{f"{backend}_samples_s": samples[backend] for backend in BACKENDS},
        **{f"{backend}_windows_per_s": len(batch) / seconds[backend]["median"] for backend in BACKENDS},
        "speedup": seconds["torch"]["median"] / seconds["onnxruntime"]["median"],
        "max_abs_difference": difference,
    }
