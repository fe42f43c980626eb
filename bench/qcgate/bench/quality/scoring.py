"""Score every degraded copy the way ``qcgate score`` scores a series, in parallel, with progress.

Each copy is written as an MR series (the evaluation image's spacing, plane and phase encoding)
and a batch of series goes through :func:`qcgate.cli.score.score_series_files`, the function behind
``qcgate score``: the same stack building, metric suites (:func:`qcgate.metrics.registry.load_suites`,
so learned metrics registered there join automatically) and series-level values as the service.
The baselines (:mod:`qcgate.bench.quality.baselines`) score the same volumes. A re-stored copy
is written with its own geometry and intensity storage
(:func:`qcgate.bench.quality.restorings.series_datasets`). Work is split into tasks of a few
copies of one image and run in worker processes; copies are made inside the workers (each from
its own seed, :mod:`qcgate.bench.quality.copies`), so only scores travel back.

Besides every metric's value and calibrated quality, each row keeps the series verdict as
``qcgate score --json`` prints it: ``flag``, ``quality`` and ``findings``. They are read by name
from the JSON document, so a runtime without ``quality`` or ``findings`` gives ``None`` and ``[]``.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qcgate.bench.quality.baselines import Baseline, available_baselines
from qcgate.bench.quality.copies import CopySpec, DegradedCopy, applies_to, make_copy
from qcgate.bench.quality.real_images import EvaluationImage
from qcgate.bench.quality.restorings import series_datasets
from qcgate.cli.score import score_series_files
from qcgate.core.settings import get_settings
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series

__all__ = ["ScoreRow", "score_copies"]

_COPIES_PER_TASK = 6


@dataclass(frozen=True)
class ScoreRow:
    """One scored copy: what it is, how far it is from the clean image, and every metric's value."""

    image: str
    anatomy: str
    copy: str
    kind: str
    severity: float | None
    corruptions: list[dict[str, Any]]
    reference: dict[str, float]
    composite: float
    status: str
    metrics: dict[str, float]  # NaN where the metric gave no value
    higher_is_better: dict[str, bool]
    flag: str | None = None  # "pass" | "warn" | "fail"; None when the series was not flagged
    quality: float | None = None  # the series verdict's 0-100 (higher is better), where given
    findings: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "severity", "slices", "stack"}
    metric_quality: dict[str, float] = field(default_factory=dict)  # calibrated 0-100; NaN where none


@dataclass(frozen=True)
class _Task:
    image: EvaluationImage
    specs: tuple[CopySpec, ...]
    seed: int
    series_dir: Path
    keep_series: bool


def _write(copy: DegradedCopy, image: EvaluationImage, directory: Path, seed: int) -> str:
    """Write ``copy`` as an MR series in ``directory``; returns its SeriesInstanceUID."""
    description = f"qcgate evaluation {image.name} {copy.spec.name}"
    uid_seed = f"qcgate quality benchmark {seed} {image.name} {copy.spec.name}"
    if copy.storage is None:
        datasets = mr_series_datasets(
            copy.volume,
            series_description=description,
            patient_id="QCGATE^EVALUATION",
            orientation=image.orientation,
            spacing_mm=image.spacing_mm,
            phase_encoding="COL" if image.phase_encode_axis == -2 else "ROW",
            uid_seed=uid_seed,
            acquired_share=image.acquired_share,
        )
    else:
        datasets = series_datasets(
            copy.volume,
            copy.storage,
            clean=image.volume,
            spacing_mm=image.spacing_mm,
            orientation=image.orientation,
            phase_encode_axis=image.phase_encode_axis,
            series_description=description,
            patient_id="QCGATE^EVALUATION",
            uid_seed=uid_seed,
            acquired_share=image.acquired_share,
        )
    write_series(datasets, directory)
    return str(datasets[0].SeriesInstanceUID)


VERDICT = "quality"  # the series verdict's name among the metrics of a row


def _verdict(document: dict[str, Any]) -> dict[str, Any]:
    """The verdict fields of a ``qcgate score --json`` document, read tolerantly."""
    quality = document.get("quality")
    metrics = document.get("metrics") or {}
    return {
        "flag": document.get("flag"),
        "quality": float(quality) if quality is not None else None,
        "findings": list(document.get("findings") or []),
        "metric_quality": {
            name: float(m["quality"]) if m.get("quality") is not None else float("nan")
            for name, m in metrics.items()
        },
    }


def _score_task(task: _Task) -> list[ScoreRow]:
    """Make, write and score one task's copies (runs in a worker process)."""
    baselines: list[Baseline] = available_baselines()
    copies = [make_copy(task.image, spec, task.seed) for spec in task.specs]
    directories = [task.series_dir / task.image.name / spec.name for spec in task.specs]
    uids = [_write(c, task.image, d, task.seed) for c, d in zip(copies, directories, strict=True)]
    results = {r.series_instance_uid: r for r in score_series_files(get_settings(), directories)}
    rows = []
    for copy, uid in zip(copies, uids, strict=True):
        result = results.get(uid)
        metrics = {name: m.value for name, m in result.metrics.items()} if result else {}
        directions = {name: m.higher_is_better for name, m in result.metrics.items()} if result else {}
        verdict = _verdict(result.model_dump(mode="json") if result else {})
        for baseline in baselines:
            metrics[baseline.name] = baseline.score(copy.volume)
            directions[baseline.name] = baseline.higher_is_better
        # The series verdict is ranked like a metric too (within-image SRCC, reader pairs).
        metrics[VERDICT] = verdict["quality"] if verdict["quality"] is not None else float("nan")
        directions[VERDICT] = True
        rows.append(
            ScoreRow(
                image=task.image.name,
                anatomy=task.image.anatomy,
                copy=copy.spec.name,
                kind=copy.spec.kind,
                severity=copy.spec.severity,
                corruptions=copy.provenance["corruptions"],
                reference=copy.reference,
                composite=copy.composite,
                status=result.status.value if result else "missing",
                metrics=metrics,
                higher_is_better=directions,
                **verdict,
            )
        )
    if not task.keep_series:
        for directory in directories:
            shutil.rmtree(directory)
    return rows


def _tasks(
    images: Sequence[EvaluationImage], specs: Sequence[CopySpec], seed: int, series_dir: Path, keep: bool
) -> Iterator[_Task]:
    for image in images:
        mine = [spec for spec in specs if applies_to(spec, image)]
        for start in range(0, len(mine), _COPIES_PER_TASK):
            yield _Task(image, tuple(mine[start : start + _COPIES_PER_TASK]), seed, series_dir, keep)


def _completed(tasks: Sequence[_Task], jobs: int) -> Iterator[tuple[int, list[ScoreRow]]]:
    """(task index, rows) as tasks finish: in this process for one job, else in a process pool."""
    if jobs <= 1:
        for index, task in enumerate(tasks):
            yield index, _score_task(task)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_score_task, task): index for index, task in enumerate(tasks)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def score_copies(
    images: Sequence[EvaluationImage],
    specs: Sequence[CopySpec],
    *,
    seed: int,
    series_dir: Path,
    keep_series: bool = False,
    jobs: int = 1,
) -> list[ScoreRow]:
    """Every copy in ``specs`` of every image, scored; progress and ETA on stderr.

    Rows come back in image and spec order whatever order the workers finish in.
    """
    tasks = list(_tasks(images, specs, seed, series_dir, keep_series))
    total, done, started = sum(len(t.specs) for t in tasks), 0, time.monotonic()
    finished: dict[int, list[ScoreRow]] = {}
    for index, rows in _completed(tasks, jobs):
        finished[index] = rows
        done += len(rows)
        elapsed = time.monotonic() - started
        sys.stderr.write(
            f"quality: scored {done}/{total} copies ({done / total:.0%}), "
            f"{elapsed:.0f} s elapsed, about {elapsed / done * (total - done):.0f} s left\n"
        )
        sys.stderr.flush()
    return [row for index in range(len(tasks)) for row in finished[index]]
