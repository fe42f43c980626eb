"""Compare golden outputs (score/REST JSON, SR content as JSON) with freshly generated ones.

:func:`normalise` blanks what legitimately differs between runs or code bases: instance UIDs, dates
and times, timings. :func:`differences` then compares the two normalised documents exactly, except
that numbers are compared with a tight tolerance (relative 1e-5) and dictionaries must also keep
their key order (the JSON document's field order is part of its output). The tolerance is float32's:
ONNX Runtime splits a convolution's sums over its intra-op threads as they come free, so a learned
per-slice score moved by up to 3e-6 relative between two runs on a busy 2-core machine (CI,
2026-12-04); 1e-5 is about 80 float32 rounding steps, far below any change of model or code.

What is blanked:

* UIDs: values under a key ending in ``uid``/``UID`` (``series_instance_uid``, ``device_uid``,
  ``SOPInstanceUID``, ``ReferencedSOPInstanceUID``, an SR UIDREF item's ``uid``...) become
  ``"<uid>"``, except registered DICOM UIDs (SOP classes, transfer syntaxes), which name *what* a
  thing is and are compared;
* dates and times: values under a key ending in ``_at`` (the REST timings) or ``Date``/``Time``/
  ``DateTime`` (``ContentDate``, ``InstanceCreationTime``, ``ContributionDateTime``, ``StudyDate``...)
  become ``"<datetime>"`` when set;
* durations: values under a key ending in ``_s`` (``receive_to_result_s``) become ``"<duration>"``
  when set.

A null stays null, so "set" versus "not set" is still compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydicom.uid import UID

REL_TOL = 1e-5
ABS_TOL = 1e-9  # for values that are zero up to rounding (e.g. a ghost-to-signal ratio of -0.0)

UID_MARK, DATETIME_MARK, DURATION_MARK = "<uid>", "<datetime>", "<duration>"


def _is_uid_key(key: str) -> bool:
    return key.lower().endswith("uid")


def _is_datetime_key(key: str) -> bool:
    return key.endswith(("_at", "Date", "Time", "DateTime"))


def _is_duration_key(key: str) -> bool:
    return key.endswith("_s")


def _registered(value: str) -> bool:
    """A UID of the DICOM standard's registry (pydicom knows its name), e.g. an SOP class."""
    return UID(value).name != value


def _blank(key: str, value: Any) -> Any:
    if value is None:
        return None
    if _is_uid_key(key):
        if isinstance(value, list):
            return [UID_MARK if not _registered(str(v)) else v for v in value]
        if isinstance(value, str):
            return value if _registered(value) else UID_MARK
    if _is_datetime_key(key) and isinstance(value, str):
        return DATETIME_MARK
    if _is_duration_key(key) and isinstance(value, int | float) and not isinstance(value, bool):
        return DURATION_MARK
    return normalise(value)


def normalise(document: Any) -> Any:
    """A copy of ``document`` (parsed JSON) with UIDs, dates, times and durations blanked."""
    if isinstance(document, Mapping):
        return {key: _blank(str(key), value) for key, value in document.items()}
    if isinstance(document, list):
        return [normalise(item) for item in document]
    return document


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def differences(
    expected: Any, actual: Any, path: str = "$", *, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL
) -> list[str]:
    """Every place where the normalised ``actual`` differs from the normalised ``expected``.

    Call with documents already passed through :func:`normalise` (``assert_same`` does both).
    """
    if _number(expected) and _number(actual):
        if math.isclose(float(expected), float(actual), rel_tol=rel_tol, abs_tol=abs_tol):
            return []
        return [f"{path}: {expected!r} != {actual!r}"]
    if type(expected) is not type(actual):
        return [
            f"{path}: {type(expected).__name__} {expected!r:.80} != {type(actual).__name__} {actual!r:.80}"
        ]
    if isinstance(expected, dict):
        found = []
        missing = [key for key in expected if key not in actual]
        extra = [key for key in actual if key not in expected]
        if missing:
            found.append(f"{path}: missing keys {missing}")
        if extra:
            found.append(f"{path}: unexpected keys {extra}")
        common_expected = [key for key in expected if key in actual]
        common_actual = [key for key in actual if key in expected]
        if common_expected != common_actual:
            found.append(f"{path}: key order {common_expected} != {common_actual}")
        for key in common_expected:
            found += differences(
                expected[key], actual[key], f"{path}.{key}", rel_tol=rel_tol, abs_tol=abs_tol
            )
        return found
    if isinstance(expected, list):
        found = []
        if len(expected) != len(actual):
            found.append(f"{path}: {len(expected)} items != {len(actual)} items")
        for index, (left, right) in enumerate(zip(expected, actual, strict=False)):
            found += differences(left, right, f"{path}[{index}]", rel_tol=rel_tol, abs_tol=abs_tol)
        return found
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


def assert_same(expected: Any, actual: Any, name: str = "document", *, limit: int = 30) -> None:
    """Raise AssertionError listing (up to ``limit``) differences of the normalised documents."""
    found = differences(normalise(expected), normalise(actual))
    if found:
        shown = "\n  ".join(found[:limit])
        more = f"\n  ... and {len(found) - limit} more" if len(found) > limit else ""
        raise AssertionError(f"{name}: {len(found)} difference(s) from the golden output:\n  {shown}{more}")
