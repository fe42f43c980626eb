"""GPU workers on the CPU: batching across series, provider choice, the gpu queue, a real gpu worker.

No GPU here: the batcher, the I/O binding and the gpu worker kind run on the CPU provider, the code
path a GPU worker runs; the shipped ONNX models (dynamic batch axis) are the sessions under test.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import redis

from qcgate.contract.manifest import ModelEntry, default_manifest_path, load_manifest
from qcgate.core.settings import Settings
from qcgate.harness.peers import QCGate, storescu
from qcgate.imaging.volume import Stack
from qcgate.metrics.batching import Batcher, BatchPolicy
from qcgate.metrics.learned import OnnxMetric, bound_runner
from qcgate.metrics.providers import CPU, CUDA, fp16_holds, providers_for
from qcgate.synthetic.demo_series import write_phantom_series
from qcgate.worker.celery_app import (
    GPU_QUEUE,
    QUEUE,
    create_celery,
    enqueue_assessment,
    worker_argv,
)

MANIFEST = default_manifest_path()
ENTRIES = {entry.name: entry for entry in load_manifest(MANIFEST).models} if MANIFEST.is_file() else {}
needs_models = pytest.mark.skipif(not ENTRIES, reason="no shipped ONNX models")


def stack(shape: tuple[int, int, int], seed: int) -> Stack:
    """A bright noisy block on a dark background, (S, R, C)."""
    rng = np.random.default_rng(seed)
    volume = rng.rayleigh(20.0, size=shape)
    volume[:, shape[1] // 8 : -shape[1] // 8, shape[2] // 8 : -shape[2] // 8] += 800.0
    uids = tuple(f"1.2.3.{i}" for i in range(shape[0]))
    return Stack(volume.astype(np.float32), (1.0, 1.0, 1.0), None, uids, "axial")


def metric(entry: ModelEntry, batching: BatchPolicy | None = None) -> OnnxMetric:
    return OnnxMetric(entry, MANIFEST.parent, threads=1, providers=[CPU], batching=batching)


def in_threads(work: list[Callable[[], object]]) -> list[object]:
    """Run every callable on its own thread, released together; their results (or exceptions)."""
    results: list[object] = [None] * len(work)
    start = threading.Barrier(len(work))

    def call(index: int) -> None:
        start.wait()
        try:
            results[index] = work[index]()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[index] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@needs_models
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_series_scored_at_once_through_the_batcher_match_unbatched_scores(name: str) -> None:
    """Four series on four threads, three of one shape and one of another, share batches of 8."""
    stacks = [stack((5, 64, 64), 1), stack((7, 64, 64), 2), stack((4, 96, 64), 3), stack((6, 64, 64), 4)]
    alone = metric(ENTRIES[name])
    batched = metric(ENTRIES[name], BatchPolicy(max_batch=8, max_wait_s=0.05))
    expected = [alone.evaluate(s)[0] for s in stacks]
    got = in_threads([lambda s=s: batched.evaluate(s)[0] for s in stacks])
    for want, result in zip(expected, got, strict=True):
        assert not isinstance(result, Exception), result
        np.testing.assert_allclose(result.value, want.value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.per_slice, want.per_slice, rtol=1e-5, atol=1e-6)
    assert batched.batcher is not None
    assert batched.batcher.runs > 0


@needs_models
def test_chunks_from_several_threads_become_one_session_run() -> None:
    entry = ENTRIES["msm"]
    session = ort.InferenceSession(str(MANIFEST.parent / entry.file), providers=[CPU])
    run = bound_runner(session, entry.input.tensor_name, entry.output.tensor_name)
    chunks = [np.random.default_rng(i).random((4, 1, 64, 64), dtype=np.float32) for i in range(4)]
    batcher = Batcher(run, BatchPolicy(max_batch=16, max_wait_s=5.0))  # full at 16: no waiting
    results = in_threads([lambda c=c: batcher(c) for c in chunks])
    assert batcher.runs == 1
    direct = session.run([entry.output.tensor_name], {entry.input.tensor_name: np.concatenate(chunks)})[0]
    np.testing.assert_allclose(np.concatenate(results), direct, rtol=1e-5, atol=1e-6)
    batcher.close()
    # A chunk larger than a batch is split across runs, its scores still in order.
    small = Batcher(run, BatchPolicy(max_batch=4, max_wait_s=0.01))
    big = np.random.default_rng(9).random((10, 1, 64, 64), dtype=np.float32)
    np.testing.assert_allclose(small(big), run(big), rtol=1e-5, atol=1e-6)
    assert small.runs == 3


@needs_models
def test_a_failed_batch_reaches_only_its_callers() -> None:
    """Two channels where the model takes one: ONNX Runtime refuses that chunk's batch alone."""
    entry = ENTRIES["rank_effnet"]
    session = ort.InferenceSession(str(MANIFEST.parent / entry.file), providers=[CPU])
    run = bound_runner(session, entry.input.tensor_name, entry.output.tensor_name)
    good = [np.random.default_rng(i).random((3, 1, 48, 48), dtype=np.float32) for i in range(3)]
    bad = np.zeros((2, 2, 48, 48), dtype=np.float32)
    batcher = Batcher(run, BatchPolicy(max_batch=32, max_wait_s=0.2))
    results = in_threads([*(lambda c=c: batcher(c) for c in good), lambda: batcher(bad)])
    assert isinstance(results[-1], Exception)
    for chunk, result in zip(good, results[:-1], strict=True):
        np.testing.assert_allclose(result, run(chunk), rtol=1e-5, atol=1e-6)
    # A session that fails a batch shared by two callers fails both, and the batcher goes on.
    calls = iter([RuntimeError("device lost"), None])

    def flaky(batch: np.ndarray) -> np.ndarray:
        if (error := next(calls)) is not None:
            raise error
        return batch.reshape(len(batch), -1).sum(axis=1)

    shared = Batcher(flaky, BatchPolicy(max_batch=4, max_wait_s=5.0))
    first = in_threads([lambda: shared(np.ones((2, 1, 2, 2))), lambda: shared(np.ones((2, 1, 2, 2)))])
    assert [str(result) for result in first] == ["device lost", "device lost"]
    np.testing.assert_array_equal(shared(np.ones((4, 1, 2, 2))), [4.0] * 4)
    assert shared.runs == 2


def test_provider_choice_falls_back_to_the_cpu_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    assert providers_for("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert providers_for("auto", [CPU]) == [CPU]
    assert providers_for("cpu", [CUDA, CPU]) == [CPU]
    with caplog.at_level(logging.WARNING, logger="qcgate.metrics.providers"):
        assert providers_for("cuda", ["AzureExecutionProvider", CPU]) == [CPU]
    assert "offers no CUDAExecutionProvider" in caplog.text
    assert "learned metrics run on the CPU" in caplog.text


@needs_models
def test_each_session_logs_its_provider_and_fp16_only_where_parity_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if CUDA in ort.get_available_providers():
        pytest.skip("this machine has CUDA: the fallback is not what runs")
    entry = ENTRIES["msm"]
    with caplog.at_level(logging.INFO, logger="qcgate.metrics.providers"):
        on_cpu = OnnxMetric(entry, MANIFEST.parent, threads=1, providers=[CUDA, CPU], fp16=True)
    assert on_cpu.providers == [CPU]
    assert on_cpu.precision == "fp32"  # fp16 is for CUDA sessions only
    assert "learned metric msm: ONNX Runtime session on CPUExecutionProvider (fp32)" in caplog.text
    # The recorded fp16 error against the fp32 parity tolerance decides, per model.
    for name, model in ENTRIES.items():
        error, atol = model.parity.fp16_max_abs_error, model.parity.atol
        assert fp16_holds(model) == (error is not None and error <= atol), name


def queued(settings: Settings, queue: str) -> int:
    return len(list((settings.broker_dir / "queue").glob(f"*.{queue}.msg")))


@pytest.mark.parametrize(("enabled", "queue"), [(False, QUEUE), (True, GPU_QUEUE)])
def test_assessments_go_to_the_gpu_queue_only_when_it_is_enabled(
    tmp_path: Path, enabled: bool, queue: str
) -> None:
    settings = Settings(data_dir=tmp_path, gpu_queue_enabled=enabled)
    enqueue_assessment(create_celery(settings), 7)
    assert queued(settings, queue) == 1
    assert queued(settings, GPU_QUEUE if queue == QUEUE else QUEUE) == 0
    cpu, gpu = worker_argv(settings), worker_argv(settings, "gpu")
    assert "--queues=qcgate,qcgate.delivery" in cpu
    assert "--pool=solo" in cpu
    assert "--queues=qcgate.gpu" in gpu
    assert "--pool=threads" in gpu
    assert f"--concurrency={settings.gpu_worker_threads}" in gpu


@pytest.mark.peers
@needs_models
def test_a_gpu_worker_on_the_cpu_scores_series_from_the_gpu_queue(
    start_qcgate: Callable[..., QCGate], postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Receiver and API queue to qcgate.gpu; the only worker is a gpu one (on the CPU provider)."""
    gate = start_qcgate(
        ["scp"],
        ["api"],
        ["worker", "--kind", "gpu"],
        database_url=postgres_url,
        broker_url=redis_url,
        gpu_queue_enabled="true",
        onnx_providers="cuda",
    )
    series = [write_phantom_series(tmp_path / f"series-{i}", shape=(8, 64, 64)) for i in range(2)]
    for _, files in series:
        assert storescu(gate.dicom_port, files).returncode == 0
    for uid, _ in series:
        body = gate.wait_for_series(uid)
        assert body["status"] == "done"
        assert set(ENTRIES) <= set(body["metrics"]), "a learned metric is missing"
    log = gate.log_text()
    assert "gpu worker: --queues=qcgate.gpu --pool=threads" in log
    assert "offers no CUDAExecutionProvider" in log or CUDA in ort.get_available_providers()
    assert "ONNX Runtime session on" in log
    broker = redis.Redis.from_url(redis_url)
    assert broker.llen(GPU_QUEUE) == 0
    assert broker.llen(QUEUE) == 0
