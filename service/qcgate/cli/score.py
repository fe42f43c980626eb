"""``qcgate score``: the worker's pipeline on local files, no server, one result per series."""

from __future__ import annotations

import sys
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from qcgate.api.schemas import SeriesPublic, TimingsPublic, series_public
from qcgate.assessment.document import SeriesHeader
from qcgate.assessment.pipeline import assess_series
from qcgate.core.settings import Settings, get_settings
from qcgate.metrics.registry import load_suites


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path} does not exist")


def group_by_series(
    paths: Sequence[Path], scored_classes: frozenset[str]
) -> tuple[dict[tuple[str, str], list[Path]], dict[str, dict[str, str]]]:
    """Scored (MR) files per (study, series) UID, and the header fields of each series."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    headers: dict[str, dict[str, str]] = {}
    for path in _files(paths):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError):
            print(f"qcgate score: skipping {path}: not a DICOM file", file=sys.stderr)  # noqa: T201
            continue
        if str(header.get("SOPClassUID", "")) not in scored_classes:
            continue
        series_uid = str(header.get("SeriesInstanceUID", ""))
        groups[(str(header.get("StudyInstanceUID", "")), series_uid)].append(path)
        headers.setdefault(
            series_uid,
            {
                "modality": str(header.get("Modality", "")),
                "station_name": str(header.get("StationName", "") or ""),
                "series_description": str(header.get("SeriesDescription", "") or ""),
            },
        )
    return groups, headers


def score_series_files(settings: Settings, paths: Sequence[Path]) -> list[SeriesPublic]:
    groups, headers = group_by_series(paths, settings.scored_sop_classes)
    suites = load_suites(settings)
    results = []
    for (study_uid, series_uid), files in groups.items():
        started_at = datetime.now(UTC)
        assessment = assess_series(
            files,
            suites,
            settings.thresholds,
            limits=settings.verdict_limits,
            series_filter=settings.series_filter,
            acquired_grid=settings.verdict_acquired_grid,
        )
        timings = TimingsPublic(started_at=started_at, finished_at=datetime.now(UTC))
        document = assessment.result
        header = SeriesHeader(
            series_instance_uid=series_uid,
            study_instance_uid=study_uid,
            status=document.status,
            instances=len(files),
            **headers[series_uid],
        )
        results.append(series_public(header, document, timings, 1))
    return results


def score_paths(paths: Sequence[Path], *, as_json: bool) -> int:
    """Print one result per series; exit status 2 when no MR series was found."""
    results = score_series_files(get_settings(), paths)
    if not results:
        print("qcgate score: no MR image series found", file=sys.stderr)  # noqa: T201
        return 2
    for result in results:
        if as_json:
            print(result.model_dump_json())  # noqa: T201
        else:
            metrics = "  ".join(f"{name}={metric.value:.3g}" for name, metric in result.metrics.items())
            flag = result.flag.value if result.flag else result.status.value
            print(f"{result.series_instance_uid}  {result.series_description!r}  {flag.upper()}  {metrics}")  # noqa: T201
            for reason in result.reasons:
                print(f"    - {reason}")  # noqa: T201
    return 0
