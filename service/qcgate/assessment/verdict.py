"""The series verdict: one calibrated ``quality`` and the artifacts found, and the flag they give.

Per scored stack, the verdict model of the contract (:mod:`qcgate.contract.verdict_model`, trained on
synthetic MR by ``qcgate.models.verdict``) turns artifact features into a 0-100 quality and per-kind
severities. A series is as good as its worst stack (one unreadable stack makes the series need a
repeat), and each finding keeps the stack where it is worst, its slices named as the console names
them (InstanceNumber).

The flag comes from the verdict alone (:class:`~qcgate.core.settings.VerdictLimits`); the classic
per-metric limits flag only where a site sets them (``thresholds``). Reasons are written for a
radiographer: "motion artifact, severe, slices 40-72".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from qcgate.assessment.document import Finding
from qcgate.contract.resolution import acquired_shape
from qcgate.contract.verdict_model import (
    FINDING_KINDS,
    KIND_OF_CORRUPTION,
    VerdictModel,
    default_verdict_path,
    load_verdict_model,
)
from qcgate.core.outcomes import Flag
from qcgate.core.settings import VerdictLimits
from qcgate.imaging.volume import Stack
from qcgate.metrics.base import MetricResult

__all__ = [
    "SeriesVerdict",
    "acquired_grids",
    "judge_stacks",
    "learned_per_slice",
    "missing_learned_inputs",
    "model_identity",
    "shipped_verdict_model",
    "verdict_flag",
]

# How each kind reads in a reason on the console.
_WORDS = {
    "noise": "noise",
    "blur": "blur",
    "motion": "motion artifact",
    "ghosting": "ghosting",
    "undersampling": "undersampling artifact",
    "wrap_around": "wrap-around",
    "bias_field": "intensity inhomogeneity (bias field)",
    "spike": "spike (herringbone) artifact",
    "gibbs": "Gibbs ringing",
}


@dataclass(frozen=True)
class SeriesVerdict:
    """A series' quality (None: no stack had assessable content) and its findings, worst first."""

    quality: float | None
    findings: tuple[Finding, ...]


def model_identity(model: VerdictModel) -> dict[str, str]:
    """What the provenance records of the verdict model: its version and a digest of its content."""
    content = json.dumps(model.document, sort_keys=True, separators=(",", ":")).encode()
    return {"version": str(model.document.get("version", "")), "sha256": hashlib.sha256(content).hexdigest()}


@cache
def shipped_verdict_model() -> VerdictModel:
    """The verdict model shipped with the contract, loaded once per process."""
    return load_verdict_model(default_verdict_path())


def learned_per_slice(results: Mapping[str, MetricResult], names: Sequence[str]) -> dict[str, list[float]]:
    """The per-slice scores of the learned metrics ``names`` among a stack's ``results``, oriented
    higher-is-worse as the verdict model reads them; a metric that was not computed is left out (the
    model then reads what clean images give)."""
    scores = {}
    for name in names:
        result = results.get(name)
        if result is None or result.per_slice is None:
            continue
        sign = -1.0 if result.higher_is_better else 1.0
        scores[name] = [sign * value for value in result.per_slice]
    return scores


def missing_learned_inputs(model: VerdictModel, suite_names: Sequence[str]) -> list[str]:
    """The learned metrics ``model`` reads that no suite of ``suite_names`` computes: the verdict then
    reads them as a clean image's, which a worker should say once when it starts."""
    return [name for name in model.learned_inputs if name not in suite_names]


def judge_stacks(
    stacks: Sequence[Stack],
    model: VerdictModel,
    results: Sequence[Mapping[str, MetricResult]] | None = None,
    acquired_grid: bool = False,
) -> SeriesVerdict:
    """The verdict of a series from its scored stacks (and each stack's metric ``results``, which a
    model with learned inputs reads): the worst stack's quality, each finding kind at its worst stack.
    With ``acquired_grid``, a stack whose header says it was interpolated is judged on the grid it
    was acquired on (:func:`acquired_grids`)."""
    qualities: list[float] = []
    worst: dict[str, Finding] = {}
    for index, stack in enumerate(stacks):
        learned = learned_per_slice(results[index], model.learned_inputs) if results else None
        share = stack.acquired_share if acquired_grid else None
        verdict = model.assess(stack.voxels, learned=learned, acquired_share=share)
        if verdict.quality is not None:
            qualities.append(verdict.quality)
        for found in verdict.findings:
            # A model names document kinds; one trained on the simulator's names is mapped onto them.
            kind = found.kind if found.kind in FINDING_KINDS else KIND_OF_CORRUPTION.get(found.kind)
            if kind is None:
                continue
            finding = Finding(
                kind=kind,
                severity=round(found.severity, 1),
                slices=sorted(stack.slice_number(index) for index in found.slices),
                stack=stack.label,
            )
            if kind not in worst or finding.severity > worst[kind].severity:
                worst[kind] = finding
    findings = sorted(worst.values(), key=lambda f: -f.severity)
    return SeriesVerdict(round(min(qualities), 1) if qualities else None, tuple(findings))


def acquired_grids(stacks: Sequence[Stack]) -> dict[str, list[int]]:
    """The (rows, columns) each interpolated stack is judged on with ``acquired_grid``, by label: the
    provenance says which stacks the verdict read on another grid than the displayed one."""
    grids = {}
    for stack in stacks:
        if stack.acquired_share is None:
            continue
        shape = acquired_shape(stack.voxels.shape[1:], stack.acquired_share)
        if shape != stack.voxels.shape[1:]:
            grids[stack.label] = list(shape)
    return grids


def severity_word(severity: float, limits: VerdictLimits) -> str:
    if severity >= limits.severity_fail:
        return "severe"
    if severity >= limits.severity_warn:
        return "moderate"
    return "mild"


def slice_ranges(numbers: Sequence[int]) -> str:
    """``[40, 41, 42, 50]`` -> ``"slices 40-42, 50"``; ``[7]`` -> ``"slice 7"``."""
    ordered = sorted(set(numbers))
    if not ordered:
        return ""
    runs: list[tuple[int, int]] = []
    for number in ordered:
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)
    return f"slice {text}" if len(ordered) == 1 else f"slices {text}"


def verdict_flag(verdict: SeriesVerdict, limits: VerdictLimits) -> tuple[Flag, list[str]]:
    """Pass/warn/fail from the verdict, with one reason per finding that counts and one for quality."""
    flag, reasons = Flag.PASS, []
    for finding in verdict.findings:
        severity = finding.severity
        if severity < limits.severity_warn:
            continue
        flag = Flag.FAIL if severity >= limits.severity_fail or flag == Flag.FAIL else Flag.WARN
        where = slice_ranges(finding.slices)
        reasons.append(
            f"{_WORDS[finding.kind]}, {severity_word(severity, limits)}" + (f", {where}" if where else "")
        )
    if verdict.quality is not None and verdict.quality < limits.quality_warn:
        failed = verdict.quality < limits.quality_fail
        flag = Flag.FAIL if failed or flag == Flag.FAIL else Flag.WARN
        which, limit = ("fail", limits.quality_fail) if failed else ("warn", limits.quality_warn)
        reason = f"image quality {verdict.quality:.0f}/100 is below the {which} limit {limit:g}"
        if verdict.findings and verdict.findings[0].severity < limits.severity_warn:
            # No finding flags on its own, but the reader still wants to know what to look for.
            worst = verdict.findings[0]
            where = slice_ranges(worst.slices)
            reason += f"; most likely {_WORDS[worst.kind]}" + (f", {where}" if where else "")
        reasons.append(reason)
    return flag, reasons
