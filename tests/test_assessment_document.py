"""The assessment document: valid once constructed, tolerant of stored rows, and the one source of
the REST series view and the webhook body (a field added to it reaches both)."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from qcgate.api.schemas import SeriesPublic
from qcgate.assessment.document import AssessmentDocument, AssessmentFindings, SeriesHeader
from qcgate.assessment.pipeline import failed_assessment
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.delivery.payload import WEBHOOK_OMITS, assessment_part, series_part
from qcgate.store.tables import Assessment, Series, Study

DEVICE_UID = "1.2.826.0.1.3680043.8.498.1"


def document_json() -> dict[str, Any]:
    """A finished assessment's JSON, as the current pipeline writes it."""
    return {
        "status": "done",
        "instances": 3,
        "flag": "warn",
        "quality": 47.5,
        "findings": [{"kind": "noise", "severity": 55.0, "slices": [2, 3], "stack": "axial"}],
        "reasons": ["snrd 2.5 is below the warn limit 3.0 (higher is better)"],
        "metrics": {
            "snrd": {"value": 2.5, "higher_is_better": True, "quality": None},
            "msm": {"value": 0.02, "higher_is_better": False, "quality": 61.5},
        },
        "stacks": [
            {
                "label": "axial",
                "shape": [3, 8, 8],
                "scored": True,
                "skipped_reason": "",
                "metrics": {
                    "snrd": {
                        "value": 2.5,
                        "higher_is_better": True,
                        "quality": None,
                        "per_slice": [None, 2.5, 2.4],
                    },
                    "msm": {"value": 0.02, "higher_is_better": False, "quality": 61.5},
                },
            }
        ],
        "provenance": {
            "software_version": "0.1.0",
            "metric_versions": {"classic": "1"},
            "algorithms": [
                {"name": "msm", "version": "1.0.0", "device_uid": DEVICE_UID, "sha256": "ab" * 32}
            ],
            "thresholds": {"snrd": {"warn": 3.0, "fail": 2.0, "scale": "value", "source": "docs"}},
        },
    }


def test_the_json_round_trips_byte_for_byte() -> None:
    data = document_json()
    document = AssessmentDocument.model_validate(data)
    assert json.dumps(document.to_json()) == json.dumps(data)
    assert json.dumps(AssessmentDocument.from_stored(data).to_json()) == json.dumps(data)


def test_a_failed_assessment_is_a_document_with_only_its_software_version() -> None:
    failed = failed_assessment("internal error while scoring: ValueError", 4)
    assert failed.result.status is SeriesStatus.FAILED
    assert failed.document()["provenance"] == {"software_version": failed.result.provenance.software_version}


def _spoil(path: str, value: Any) -> dict[str, Any]:
    data = document_json()
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


SPOILS = [
    ("metrics.snrd.value", math.nan, "finite_number"),
    ("metrics.msm.quality", 120.0, "percent"),
    ("provenance.algorithms.0.device_uid", "msm v1", "device_uid"),
    ("status", "queued", "outcome"),
    ("flag", "maybe", "enum"),
    ("metrics", KeyError, "missing"),
    ("provenance.software_version", KeyError, "missing"),
]


@pytest.mark.parametrize(("path", "value", "kind"), SPOILS)
def test_construction_refuses_an_invalid_document(path: str, value: Any, kind: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AssessmentDocument.model_validate(_spoil(path, value))
    assert caught.value.errors()[0]["type"] == kind


@pytest.mark.parametrize(
    "path", ["metrics.snrd.value", "metrics.msm.quality", "provenance.algorithms.0.device_uid"]
)
def test_a_stored_row_loads_even_with_values_the_constructor_refuses(path: str) -> None:
    value = {"metrics.snrd.value": math.nan, "metrics.msm.quality": 120.0}.get(path, "msm v1")
    AssessmentDocument.from_stored(_spoil(path, value))


def test_an_old_row_is_read_and_written_as_it_was_stored() -> None:
    """Rows from before ``algorithms`` and ``Threshold.scale``, with NaN per-slice values (before they
    became null), a key this version does not know, and a hand-made row with empty provenance."""
    old = document_json()
    del old["provenance"]["algorithms"]
    del old["provenance"]["thresholds"]["snrd"]["scale"]
    old["provenance"]["future"] = [1]
    old["stacks"][0]["metrics"]["snrd"]["per_slice"] = [math.nan, 2.5, 2.4]
    document = AssessmentDocument.from_stored(copy.deepcopy(old))
    assert document.provenance.thresholds is not None
    assert document.provenance.thresholds["snrd"].scale == "value"  # read with its default...
    assert json.dumps(document.to_json()) == json.dumps(old)  # ...but sent as stored
    bare = {**document_json(), "provenance": {}}
    assert AssessmentDocument.from_stored(bare).to_json()["provenance"] == {}


def test_the_series_view_is_the_header_then_the_findings_then_its_own() -> None:
    header = list(SeriesHeader.model_fields)
    findings = list(AssessmentFindings.model_fields)
    assert list(SeriesPublic.model_fields) == [*header, *findings, "provenance", "timings", "assessments"]
    assert set(findings) <= set(AssessmentDocument.model_fields)


def test_the_webhook_sends_the_stored_document_less_the_stacks() -> None:
    data = document_json()
    now = datetime(2024, 1, 2, tzinfo=UTC)
    series = Series(
        series_instance_uid="1.2.3.4",
        study=Study(study_instance_uid="1.2.3"),
        modality="MR",
        station_name="S",
        series_description="t1",
        calling_ae="AE",
        status=SeriesStatus.DONE,
        instance_count=3,
    )
    row = Assessment(
        id=7,
        revision=2,
        outcome=SeriesStatus.DONE,
        flag=Flag(data["flag"]),
        reasons=data["reasons"],
        metrics=data["metrics"],
        stacks=data["stacks"],
        provenance=data["provenance"],
        quality=data["quality"],
        findings=data["findings"],
        instance_count=data["instances"],
        started_at=now,
        finished_at=now,
    )
    part = assessment_part(row)
    assert set(part) == (set(AssessmentDocument.model_fields) - WEBHOOK_OMITS) | {
        "id",
        "revision",
        "started_at",
        "finished_at",
    }
    assert part["metrics"] == data["metrics"]
    assert part["provenance"] == data["provenance"]
    assert series_part(series) == {
        "series_instance_uid": "1.2.3.4",
        "study_instance_uid": "1.2.3",
        "instances": 3,
        "modality": "MR",
        "station_name": "S",
        "series_description": "t1",
        "calling_ae": "AE",
    }
