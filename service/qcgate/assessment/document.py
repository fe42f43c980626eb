"""The assessment document: one finished assessment of a series as one typed, validated model.

REST (``SeriesPublic``), ``qcgate score --json``, the SR and KOS, and the webhook body all serialise
this one model, so a field added here reaches all of them; the database keeps its JSON.

Validated on construction, as highdicom builds its objects: once :class:`AssessmentDocument` exists
its status is an outcome, every value is a finite number, every quality lies within 0-100 and every
model's Device UID is a valid UID. Stored rows are read back with :meth:`AssessmentDocument.from_stored`,
which tolerates what older versions wrote (provenance without ``algorithms``/``thresholds``, values
that were never checked), so an upgrade serves every old row.

The JSON is the one the database has always held, field for field and in the same order: optional
parts an older or a failed assessment lacks (a stack metric's ``per_slice``, the provenance's
``metric_versions``, ``algorithms``, ``thresholds``) are left out, never written as null.

The parts::

    AssessmentDocument
    ├── status, instances            AssessmentOutcome: how the assessment ended, over how many files
    ├── flag, quality, findings,     AssessmentFindings: what it found; a series view (SeriesPublic)
    │   reasons, metrics, stacks       shares these fields, so new findings reach REST unchanged
    │   ├── quality                               the series verdict, 0-100 (null: nothing assessable)
    │   ├── findings: [Finding]                   artifact kind, severity, worst slices, stack
    │   ├── metrics: {name: MetricValue}          the series value of each metric
    │   └── stacks: [StackResult]                 each stack, scored or skipped
    │       └── metrics: {name: StackMetric}      the stack's value, and its per-slice values
    └── provenance: Provenance       software and suite versions, learned models, thresholds used
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError
from pydicom.uid import UID

from qcgate.contract.verdict_model import FINDING_KINDS
from qcgate.core.outcomes import Flag, SeriesStatus
from qcgate.core.settings import Threshold
from qcgate.metrics.base import Algorithm

OUTCOMES = (SeriesStatus.DONE, SeriesStatus.NOT_ASSESSABLE, SeriesStatus.FAILED)
STORED = {"stored": True}  # validation context of a stored row: checks are the reader's, not ours


def _decoding(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


def _finite(value: float, info: ValidationInfo) -> float:
    if not math.isfinite(value) and not _decoding(info):
        raise PydanticCustomError("finite_number", "must be a finite number, got {value}", {"value": value})
    return value


def _percent(value: float | None, info: ValidationInfo) -> float | None:
    if value is not None and not 0.0 <= value <= 100.0 and not _decoding(info):
        raise PydanticCustomError("percent", "{value} lies outside 0-100", {"value": value})
    return value


def _device_uid(algorithm: Algorithm, info: ValidationInfo) -> Algorithm:
    if not UID(algorithm.device_uid).is_valid and not _decoding(info):
        raise PydanticCustomError(
            "device_uid",
            "{name}: invalid Device UID {uid}",
            {"name": algorithm.name, "uid": repr(algorithm.device_uid)},
        )
    return algorithm


Finite = Annotated[float, AfterValidator(_finite)]
Percent = Annotated[float | None, AfterValidator(_percent)]
Severity = Annotated[float, AfterValidator(_percent)]
Model = Annotated[Algorithm, AfterValidator(_device_uid)]


def _absent(value: object) -> bool:
    return value is None


def _unversioned(value: str) -> bool:
    return value == ""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True)

    def to_json(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """The JSON form, as stored and sent (a fresh dict: the caller may change it).

        Only what the model was given: a stored row's absent field stays absent (an old threshold
        without ``scale`` is sent as stored); the pipeline gives every field, so its JSON is complete.
        """
        return self.model_dump(mode="json", exclude=exclude, exclude_unset=True)


class MetricValue(_Part):
    """One metric's value; ``quality`` is its calibrated 0-100 (higher is better), where one exists."""

    value: Finite
    higher_is_better: bool
    quality: Percent = Field(None, description="0-100, higher is better, where a calibration exists.")


class StackMetric(MetricValue):
    """A metric of one stack; ``per_slice`` has null where a slice has no value (JSON has no NaN)."""

    per_slice: list[float | None] | None = Field(None, exclude_if=_absent)


class StackResult(_Part):
    """One stack (volume or orientation) of the series: scored, or skipped with the reason."""

    label: str
    shape: tuple[int, int, int]
    scored: bool
    skipped_reason: str = ""
    metrics: dict[str, StackMetric] = Field(default_factory=dict)


class Provenance(_Part):
    """What produced the result (style rule 7). Fields an older or a failed assessment lacks stay absent;
    keys this version does not know are kept as they were stored."""

    model_config = ConfigDict(extra="allow")

    software_version: str = Field("", exclude_if=_unversioned)  # "" only in a stored row without one
    metric_versions: dict[str, str] | None = Field(None, exclude_if=_absent)
    algorithms: list[Model] | None = Field(None, exclude_if=_absent)
    thresholds: dict[str, Threshold] | None = Field(None, exclude_if=_absent)

    @model_validator(mode="after")
    def _versioned(self, info: ValidationInfo) -> Self:
        if not self.software_version and not _decoding(info):
            raise PydanticCustomError("missing", "Field required", {"field": "software_version"})
        return self


class AssessmentOutcome(_Part):
    """How the assessment ended (done, not assessable, failed) and how many files it read."""

    status: SeriesStatus
    instances: int = Field(ge=0)

    @model_validator(mode="after")
    def _an_outcome(self) -> Self:
        if self.status not in OUTCOMES:
            raise PydanticCustomError(
                "outcome", '"{status}" is not an outcome of an assessment', {"status": self.status.value}
            )
        return self


class Finding(_Part):
    """One artifact the verdict found: its kind, how bad (0-100, higher is worse), and where.

    ``slices`` name the slices where it is worst, worst first, as the scanner console does
    (InstanceNumber, or the frame number of a multi-frame instance); ``stack`` is the label of the
    stack they belong to (a series can hold several).
    """

    kind: str
    severity: Severity
    slices: list[int] = Field(default_factory=list)
    stack: str = ""

    @model_validator(mode="after")
    def _known_kind(self, info: ValidationInfo) -> Self:
        if self.kind not in FINDING_KINDS and not _decoding(info):
            raise PydanticCustomError("finding_kind", '"{kind}" is not a finding kind', {"kind": self.kind})
        return self


class AssessmentFindings(_Part):
    """What an assessment found. Empty by default: a series not assessed yet shows these empty."""

    flag: Flag | None = None
    quality: Percent = Field(
        None, description="The series verdict, 0-100, higher is better; null when nothing was assessable."
    )
    findings: list[Finding] = Field(
        default_factory=list, description="Artifacts found: kind, severity 0-100, worst slices, stack."
    )
    reasons: list[str] = Field(default_factory=list)
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    stacks: list[StackResult] = Field(
        default_factory=list, description="Per stack: label, shape, per-slice values."
    )

    def view_fields(self) -> dict[str, Any]:
        """The findings fields by name (the values themselves, not copies): a series view takes these."""
        return {name: getattr(self, name) for name in AssessmentFindings.model_fields}


class AssessmentDocument(AssessmentFindings, AssessmentOutcome):
    """One finished assessment. Every field is required: a document always says all of it."""

    flag: Flag | None
    reasons: list[str]
    metrics: dict[str, MetricValue]
    stacks: list[StackResult]
    provenance: Provenance

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> AssessmentDocument:
        """A stored document, read tolerantly: what older versions wrote still loads."""
        return cls.model_validate(data, context=STORED)


class SeriesHeader(_Part):
    """The series a document is about, as its header and the receiver know it."""

    series_instance_uid: str
    study_instance_uid: str
    status: SeriesStatus
    instances: int
    modality: str = ""
    station_name: str = ""
    series_description: str = ""
    calling_ae: str = ""
