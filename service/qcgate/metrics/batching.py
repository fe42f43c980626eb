"""One inference batch from many series: a per-process batcher in front of one ONNX Runtime session.

A ``gpu`` worker assesses several series at once, one per thread. Each learned metric cuts its
series into windows (slices or patches) and submits them in chunks; the metric's batcher packs the
windows of every waiting chunk, whichever series they come from, into batches of up to
``max_batch`` and runs each through the session once, then hands every caller its own scores::

    series threads                 batcher thread (one per session)
    submit(chunk) ──┐
    submit(chunk) ──┼──► waiting chunks, oldest first ──► one batch: up to max_batch windows of the
    submit(chunk) ──┘    (a chunk may be split between     oldest chunk's window shape, or whatever
         ▲               two batches)                      came within max_wait of it ──► run ──┐
         └──────────────────────────── each chunk's scores, in order ◄───────────────────────────┘

Why: a GPU scores a batch of 64 slices in about the time of a few single ones, and a lone series'
last chunk, a small series or a thin stack would otherwise leave the batch part empty. A window's
score does not depend on its batch (the networks hold no batch statistics at inference), so
batching changes speed, never results; ``tests/test_gpu_worker.py`` checks that per model.

Only windows of one shape share a batch (2D windows follow each series' matrix size); a chunk of
another shape waits for a batch of its own. A batch that fails (the session raises, or returns the
wrong number of scores) fails the chunks in it and only those; their callers get the exception.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

Run = Callable[[np.ndarray], np.ndarray]  # (B, *window) float32 -> (B,) scores


@dataclass(frozen=True)
class BatchPolicy:
    """How large a batch may grow and how long the oldest waiting window waits for company."""

    max_batch: int
    max_wait_s: float

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_wait_s < 0:
            raise ValueError('Arguments "max_batch" must be >= 1 and "max_wait_s" >= 0.')


@dataclass(eq=False)
class _Chunk:
    """One caller's windows; ``taken`` of them are in a batch already, ``scored`` have their scores."""

    windows: np.ndarray  # (N, *window)
    future: Future[np.ndarray]
    arrived: float
    scores: np.ndarray = field(init=False)
    taken: int = 0
    scored: int = 0

    def __post_init__(self) -> None:
        self.scores = np.empty(len(self.windows), dtype=np.float64)

    @property
    def shape(self) -> tuple[tuple[int, ...], np.dtype]:
        return self.windows.shape[1:], self.windows.dtype

    @property
    def left(self) -> int:
        return len(self.windows) - self.taken


_Part = tuple[_Chunk, int, int]  # a chunk's windows [start, stop) in one batch


class Batcher:
    """Coalesces the chunks that threads submit into batches for ``run``, on a thread of its own."""

    def __init__(self, run: Run, policy: BatchPolicy, *, name: str = "session") -> None:
        self.policy = policy
        self.runs = 0  # batches run so far: how well requests combine (runs per window submitted)
        self._run = run
        self._waiting: deque[_Chunk] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, windows: np.ndarray) -> Future[np.ndarray]:
        """Queue ``windows`` (N, *window); the future gives their (N,) float64 scores in order."""
        future: Future[np.ndarray] = Future()
        if len(windows) == 0:
            future.set_result(np.empty(0, dtype=np.float64))
            return future
        with self._condition:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._waiting.append(_Chunk(windows, future, time.monotonic()))
            self._condition.notify()
        return future

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """Scores of ``windows``, waiting for them (a drop-in for the session's own run)."""
        return self.submit(windows).result()

    def close(self) -> None:
        """Score what is waiting, then stop the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join()

    def _serve(self) -> None:
        while (parts := self._next_batch()) is not None:
            self._execute(parts)

    def _next_batch(self) -> list[_Part] | None:
        """Wait for windows, then up to ``max_wait_s`` after the oldest arrived for a full batch."""
        with self._condition:
            while not self._waiting and not self._closed:
                self._condition.wait()
            if not self._waiting:
                return None
            oldest = self._waiting[0]
            deadline = oldest.arrived + self.policy.max_wait_s
            while self._ready(oldest.shape) < self.policy.max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return self._take(oldest.shape)

    def _ready(self, shape: tuple[tuple[int, ...], np.dtype]) -> int:
        return sum(chunk.left for chunk in self._waiting if chunk.shape == shape)

    def _take(self, shape: tuple[tuple[int, ...], np.dtype]) -> list[_Part]:
        """The oldest windows of ``shape``, up to ``max_batch``; a chunk fully taken stops waiting."""
        parts: list[_Part] = []
        room = self.policy.max_batch
        for chunk in list(self._waiting):
            if room == 0:
                break
            if chunk.shape != shape:
                continue
            count = min(room, chunk.left)
            parts.append((chunk, chunk.taken, chunk.taken + count))
            chunk.taken += count
            room -= count
            if chunk.left == 0:
                self._waiting.remove(chunk)
        return parts

    def _execute(self, parts: list[_Part]) -> None:
        chunk, start, stop = parts[0]
        whole = len(parts) == 1 and start == 0 and stop == len(chunk.windows)
        batch = chunk.windows if whole else np.concatenate([c.windows[a:b] for c, a, b in parts])
        self.runs += 1
        try:
            scores = np.asarray(self._run(batch), dtype=np.float64).reshape(-1)
            if len(scores) != len(batch):
                raise RuntimeError(f"the session returned {len(scores)} scores for a batch of {len(batch)}")
        except Exception as exc:  # noqa: BLE001 - handed to every caller in this batch, never swallowed
            self._fail({c for c, _, _ in parts}, exc)
            return
        offset = 0
        for chunk, start, stop in parts:
            chunk.scores[start:stop] = scores[offset : offset + stop - start]
            offset += stop - start
            chunk.scored += stop - start
            if chunk.scored == len(chunk.windows) and not chunk.future.done():
                chunk.future.set_result(chunk.scores)

    def _fail(self, chunks: set[_Chunk], exc: Exception) -> None:
        """The batch's callers get ``exc``; the rest of their windows are dropped, nobody else's."""
        log.warning("an inference batch of %d chunk(s) failed: %s", len(chunks), exc)
        with self._condition:
            for chunk in chunks:
                if chunk in self._waiting:
                    self._waiting.remove(chunk)
        for chunk in chunks:
            if not chunk.future.done():
                chunk.future.set_exception(exc)
