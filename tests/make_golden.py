"""Golden outputs: the REST/score JSON and the SR content of two fixed synthetic MR series.

They freeze what qcgate says about a given input, so that a restructured code base can be shown to
say the same (``tests/test_golden_outputs.py`` regenerates them and compares through
``tests/golden_compare.py``, which blanks UIDs, dates and timings and compares floats closely).

Everything is deterministic: the phantoms are seeded, every UID of the input series is fixed or
derived from a fixed seed, and the SR gets fixed UIDs and a fixed content date. The path is the
service's own:

* score JSON: :func:`qcgate.cli.score.score_series_files` with default settings over a temporary
  data directory, each result serialised with ``model_dump_json()``, as ``qcgate score --json``
  prints it (one line per series);
* SR: :func:`qcgate.sr.build_quality_report` over the evaluated instances' headers
  (:func:`qcgate.delivery.publish.read_evidence`) and the assessment document, with the arguments
  :func:`qcgate.delivery.publish.issue_reports` passes for a first assessment (instance number 1,
  no predecessor, the assessment time as content date).

Regenerate the committed files (only when a change of output is intended)::

    PYTHONPATH=. python -m tests.make_golden [output directory, default tests/fixtures/golden]
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

from qcgate.assessment.pipeline import assess_series
from qcgate.cli.score import score_series_files
from qcgate.core.settings import Settings
from qcgate.delivery.publish import read_evidence
from qcgate.metrics.registry import load_suites
from qcgate.sr import build_quality_report
from qcgate.synthetic.dicom_series import Orientation, mr_series_datasets, write_series
from qcgate.synthetic.volumes import add_rician_noise, phantom_volume

GOLDEN_DIR = Path(__file__).resolve().parent / "fixtures" / "golden"

STUDY_DATETIME = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
ASSESSED_AT = datetime(2024, 1, 2, 4, 5, 6, tzinfo=UTC)  # the SR's content date and time
STUDY_UID = "2.25.101010101010101010101010101010101"


@dataclass(frozen=True)
class GoldenSeries:
    """One input series: a seeded noisy phantom written as MR Image Storage."""

    name: str
    shape: tuple[int, int, int]
    noise_fraction: float  # Rician noise sigma as a fraction of the phantom's 99th percentile
    seed: int
    orientation: Orientation
    series_number: int
    description: str
    series_uid: str
    sr_series_uid: str
    sr_sop_uid: str


# 24 slices of 64 x 64 are enough for every metric (classic and the three learned ones) to give a
# value; the first series has little noise, the second enough to fail (reasons, findings, FAIL).
SERIES: tuple[GoldenSeries, ...] = (
    GoldenSeries(
        name="a_axial_low_noise",
        shape=(24, 64, 64),
        noise_fraction=0.02,
        seed=3,
        orientation="axial",
        series_number=1,
        description="golden axial clean",
        series_uid="2.25.101010101010101010101010101010102",
        sr_series_uid="2.25.101010101010101010101010101010103",
        sr_sop_uid="2.25.101010101010101010101010101010104",
    ),
    GoldenSeries(
        name="b_sagittal_high_noise",
        shape=(24, 64, 64),
        noise_fraction=0.3,
        seed=5,
        orientation="sagittal",
        series_number=2,
        description="golden sagittal noisy",
        series_uid="2.25.101010101010101010101010101010105",
        sr_series_uid="2.25.101010101010101010101010101010106",
        sr_sop_uid="2.25.101010101010101010101010101010107",
    ),
)


def write_golden_series(directory: Path, series: GoldenSeries) -> list[Path]:
    """Write ``series`` under ``directory/<name>``; the same bytes every time (UIDs seeded)."""
    anatomy = phantom_volume(series.shape, seed=series.seed)
    sigma = float(np.percentile(anatomy, 99)) * series.noise_fraction
    volume = add_rician_noise(anatomy, sigma, seed=series.seed)
    datasets = mr_series_datasets(
        volume,
        series_description=series.description,
        study_instance_uid=STUDY_UID,
        series_instance_uid=series.series_uid,
        series_number=series.series_number,
        orientation=series.orientation,
        study_datetime=STUDY_DATETIME,
        uid_seed=f"qcgate golden {series.name}",
    )
    return write_series(datasets, directory / series.name)


# ---------------------------------------------------------------------------------------------------
# The SR as JSON: header attributes and the content tree


def _json_value(element: DataElement) -> Any:
    """A JSON-able value: numbers for DS/IS, strings for the rest, lists for multiple values."""
    if element.VR == "SQ":
        return [dataset_to_json(item) for item in element.value]
    value = element.value
    if value is None or value == "":
        return None
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value)}
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    converted = [_scalar(element.VR, v) for v in values]
    return converted if len(converted) != 1 or isinstance(value, MultiValue | list | tuple) else converted[0]


def _scalar(vr: str, value: Any) -> Any:
    if vr in ("DS", "FD", "FL"):
        return float(value)
    if vr in ("IS", "US", "SS", "UL", "SL", "UV", "SV"):
        return int(value)
    return str(value)


def dataset_to_json(dataset: Dataset, *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Every attribute of ``dataset`` by keyword (tag for private ones), in tag order."""
    out: dict[str, Any] = {}
    for element in dataset:
        key = element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})"
        if key in skip or key == "PixelData":
            continue
        out[key] = _json_value(element)
    return out


def _code(sequence: Sequence[Dataset] | None) -> dict[str, Any] | None:
    if not sequence:
        return None
    item = sequence[0]
    return {
        "CodeValue": str(item.get("CodeValue", "")),
        "CodingSchemeDesignator": str(item.get("CodingSchemeDesignator", "")),
        "CodeMeaning": str(item.get("CodeMeaning", "")),
    }


_ITEM_KEYS = ("ValueType", "RelationshipType", "ConceptNameCodeSequence", "ContentSequence")


def _item_value(item: Dataset) -> tuple[Any, set[str]]:
    """The item's value by value type, and the keywords it was taken from."""
    kind = str(item.get("ValueType", ""))
    if kind == "NUM":
        measured = item.get("MeasuredValueSequence") or []
        value: dict[str, Any] = {"numeric_value": None, "unit": None}
        if measured:
            m = measured[0]
            value["numeric_value"] = float(m.NumericValue) if "NumericValue" in m else None
            if "FloatingPointValue" in m:
                value["floating_point_value"] = float(m.FloatingPointValue)
            value["unit"] = _code(m.get("MeasurementUnitsCodeSequence"))
            extra = dataset_to_json(
                m, skip=("NumericValue", "FloatingPointValue", "MeasurementUnitsCodeSequence")
            )
            if extra:
                value["measured_value_other"] = extra
        if "NumericValueQualifierCodeSequence" in item:
            value["qualifier"] = _code(item.NumericValueQualifierCodeSequence)
        return value, {"MeasuredValueSequence", "NumericValueQualifierCodeSequence"}
    if kind == "CODE":
        return _code(item.get("ConceptCodeSequence")), {"ConceptCodeSequence"}
    if kind == "TEXT":
        return str(item.get("TextValue", "")), {"TextValue"}
    if kind == "UIDREF":
        return {"uid": str(item.get("UID", ""))}, {"UID"}
    if kind == "PNAME":
        return str(item.get("PersonName", "")), {"PersonName"}
    if kind in ("DATETIME", "DATE", "TIME"):
        keyword = {"DATETIME": "DateTime", "DATE": "Date", "TIME": "Time"}[kind]
        return {keyword: str(item.get(keyword, ""))}, {keyword}
    if kind == "CONTAINER":
        return {
            "ContinuityOfContent": str(item.get("ContinuityOfContent", "")),
            "ContentTemplateSequence": _json_value(item["ContentTemplateSequence"])
            if "ContentTemplateSequence" in item
            else None,
        }, {"ContinuityOfContent", "ContentTemplateSequence"}
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        return _json_value(item["ReferencedSOPSequence"]) if "ReferencedSOPSequence" in item else None, {
            "ReferencedSOPSequence"
        }
    return None, set()


def content_tree(dataset: Dataset) -> list[dict[str, Any]]:
    """The content items of ``dataset``'s ContentSequence, recursively."""
    items = []
    for item in dataset.get("ContentSequence") or []:
        value, used = _item_value(item)
        node: dict[str, Any] = {
            "value_type": str(item.get("ValueType", "")),
            "relationship_type": str(item.get("RelationshipType", "")),
            "concept_name": _code(item.get("ConceptNameCodeSequence")),
            "value": value,
        }
        other = dataset_to_json(item, skip=(*_ITEM_KEYS, *used))
        if other:
            node["other"] = other  # anything else on the item (none today): kept so nothing is missed
        children = content_tree(item)
        if children:
            node["children"] = children
        items.append(node)
    return items


def as_written(report: Dataset) -> Dataset:
    """``report`` encoded as the worker writes it (:func:`qcgate.delivery.publish.write_report`) and
    read back: the golden content is what is stored and sent, not highdicom's in-memory object."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, report, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def sr_document(report: Dataset) -> dict[str, Any]:
    """The SR as JSON: the root's value type and concept, its content tree, and all other attributes."""
    root = {
        "value_type": str(report.get("ValueType", "")),
        "concept_name": _code(report.get("ConceptNameCodeSequence")),
        "ContinuityOfContent": str(report.get("ContinuityOfContent", "")),
        "ContentTemplateSequence": _json_value(report["ContentTemplateSequence"])
        if "ContentTemplateSequence" in report
        else None,
    }
    header = dataset_to_json(
        report,
        skip=(
            "ContentSequence",
            "ValueType",
            "ConceptNameCodeSequence",
            "ContinuityOfContent",
            "ContentTemplateSequence",
        ),
    )
    meta = getattr(report, "file_meta", None)
    # The implementation class and version are pydicom's, not qcgate's; the group length follows them.
    file_meta = (
        {}
        if meta is None
        else dataset_to_json(
            meta,
            skip=("FileMetaInformationGroupLength", "ImplementationClassUID", "ImplementationVersionName"),
        )
    )
    return {"file_meta": file_meta, "header": header, "root": root, "content": content_tree(report)}


# ---------------------------------------------------------------------------------------------------
# Generation


@contextmanager
def _no_qcgate_environment() -> Iterator[None]:
    """Default settings: no QCGATE_* variable or config file of the caller's shell may change them."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("QCGATE_")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


def generate(workdir: Path) -> dict[str, Any]:
    """Write the input series under ``workdir`` and return {golden file name: JSON content}.

    ``series_<name>.json``: the series' ``qcgate score --json`` line, parsed;
    ``sr_<name>.json``: :func:`sr_document` of the series' SR.
    """
    inputs = workdir / "series"
    files = {series.name: write_golden_series(inputs, series) for series in SERIES}
    outputs: dict[str, Any] = {}
    with _no_qcgate_environment():
        settings = Settings(data_dir=workdir / "data")
        # qcgate score --json: one line per series, in the order score_series_files finds them.
        lines = [result.model_dump_json() for result in score_series_files(settings, [inputs])]
        scored = {json.loads(line)["series_instance_uid"]: json.loads(line) for line in lines}
        suites = load_suites(settings)
        for series in SERIES:
            outputs[f"series_{series.name}.json"] = scored[series.series_uid]
            # The worker: the assessment document of the same files, then its SR (issue_reports).
            document = assess_series(files[series.name], suites, settings.thresholds).document()
            report = build_quality_report(
                read_evidence(files[series.name]),
                document,
                series_instance_uid=series.sr_series_uid,
                sop_instance_uid=series.sr_sop_uid,
                instance_number=1,
                predecessor=None,
                content_datetime=ASSESSED_AT,
            )
            outputs[f"sr_{series.name}.json"] = sr_document(as_written(report))
    return outputs


def dump(content: Any) -> str:
    """The text of a golden file: key order kept (it is the document's), floats as Python repr."""
    return json.dumps(content, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_golden(output: Path = GOLDEN_DIR) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qcgate-golden-") as workdir:
        outputs = generate(Path(workdir))
    written = []
    for name, content in outputs.items():
        path = output / name
        path.write_text(dump(content))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    output = Path(args[0]) if args else GOLDEN_DIR
    for path in write_golden(output):
        print(f"{path}  {path.stat().st_size} bytes")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "ASSESSED_AT",
    "GOLDEN_DIR",
    "SERIES",
    "GoldenSeries",
    "content_tree",
    "dataset_to_json",
    "dump",
    "generate",
    "sr_document",
    "write_golden",
    "write_golden_series",
]
