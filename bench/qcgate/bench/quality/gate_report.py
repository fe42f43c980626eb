"""The gate-level section of ``quality.md``: the tables of :func:`qcgate.bench.quality.gate.gate_analysis`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from qcgate.bench.quality.gate import NO_FINDING

__all__ = ["gate_markdown"]


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _of(count: int, total: int) -> str:
    return f"{count}/{total}"


def _auc_lines(auc: Mapping[str, Any], directions: Mapping[str, bool]) -> list[str]:
    quality = auc["quality"]
    rows = [
        [
            "**quality** (series verdict)",
            _cell(quality["auc"]),
            _cell(quality["auc_with_restored"]),
            "–",
            "–",
            str(quality["without_value"]),
        ]
    ]
    for metric, numbers in auc["metrics"].items():
        calibrated, value = numbers["calibrated"], numbers["value"]
        rows.append(
            [
                f"{metric} ({'↑' if directions.get(metric, True) else '↓'})",
                _cell(calibrated["auc"]),
                _cell(calibrated["auc_with_restored"]),
                _cell(value["auc"]),
                _cell(value["auc_with_restored"]),
                str(calibrated["without_value"]),
            ]
        )
    return [
        "### Across-image AUC, severe against clean/mild copies",
        "",
        f"{quality['severe']} severe, {quality['clean_mild']} clean/mild and {quality['restored']} re-stored "
        "copies. AUC: the chance that a clean/mild copy scores better than a severe one, pooled over all "
        'images (1 separates perfectly, 0.5 is chance); "with re-stored" counts the re-stored copies '
        "among the good ones. Calibrated: each metric's 0-100 quality; value: its raw value.",
        "",
        *_table(
            [
                "score",
                "AUC, calibrated quality",
                "with re-stored",
                "AUC, value",
                "with re-stored",
                "copies without a calibrated quality",
            ],
            rows,
        ),
    ]


def _sensitivity_row(name: str, numbers: Mapping[str, Any]) -> list[str]:
    return [
        name,
        _cell(numbers["sensitivity"]),
        _of(numbers["flagged"], numbers["severe"]),
        str(numbers["severe_not_assessable"]),
    ]


def _specificity_row(name: str, numbers: Mapping[str, Any]) -> list[str]:
    return [
        name,
        _cell(numbers["specificity"]),
        _of(numbers["passed"], numbers["benign"]),
        str(numbers["benign_warned"]),
        str(numbers["benign_failed"]),
        str(numbers["benign_not_assessable"]),
    ]


def _flag_lines(flag: Mapping[str, Any]) -> list[str]:
    overall = flag["overall"]
    unassessable = ", ".join(f"{item['image']} {item['copy']}" for item in flag["benign_not_assessable"])
    lines = [
        "### The default flag",
        "",
        f"Sensitivity **{_cell(overall['sensitivity'])}** ({_of(overall['flagged'], overall['severe'])} "
        "severe copies warned or failed); specificity "
        f"**{_cell(overall['specificity'])}** ({_of(overall['passed'], overall['benign'])} clean and "
        f"re-stored copies passed); {overall['benign_not_assessable']} clean or re-stored copies "
        f"came back not_assessable{': ' + unassessable if unassessable else ''}.",
        "",
    ]
    per_kind = flag["per_kind"]
    lines += _table(
        ["severe copies of", "sensitivity", "flagged", "not_assessable"],
        [_sensitivity_row(kind, n) for kind, n in per_kind.items() if n["severe"]],
    )
    lines += _table(
        ["clean or re-stored", "specificity", "passed", "warned", "failed", "not_assessable"],
        [_specificity_row(kind.removeprefix("restore-"), n) for kind, n in per_kind.items() if n["benign"]],
    )
    lines += _table(
        ["image", "sensitivity", "flagged", "specificity", "passed", "benign not_assessable"],
        [
            [
                image,
                _cell(n["sensitivity"]),
                _of(n["flagged"], n["severe"]),
                _cell(n["specificity"]),
                _of(n["passed"], n["benign"]),
                str(n["benign_not_assessable"]),
            ]
            for image, n in flag["per_image"].items()
        ],
    )
    return lines


def _invariance_lines(invariance: Mapping[str, Any], tolerance: float) -> list[str]:
    return [
        "### Invariance of quality under benign re-storings",
        "",
        "The absolute difference between the quality of a re-stored copy and of its clean copy, over "
        f"images; within: at most {tolerance:g} points; same flag: the re-stored copy got the clean "
        "copy's flag.",
        "",
        *_table(
            [
                "re-storing",
                "images",
                "max abs. difference",
                "mean abs. difference",
                "within",
                "same flag",
                "without quality",
            ],
            [
                [
                    name.removeprefix("restore-"),
                    str(n["images"]),
                    _cell(n["max_abs_difference"]),
                    _cell(n["mean_abs_difference"]),
                    _of(n["within_tolerance"], n["compared"]),
                    _of(n["same_flag"], n["images"]),
                    str(n["without_quality"]),
                ]
                for name, n in invariance.items()
            ],
        ),
    ]


def _findings_lines(findings: Mapping[str, Any]) -> list[str]:
    confusion = findings["confusion"]
    seen = sorted({kind for counts in confusion.values() for kind in counts} - {NO_FINDING})
    columns = [*seen, NO_FINDING]
    rows = [
        [
            f"{kind} ({numbers['expected']})",
            *(str(confusion[kind].get(column, 0)) for column in columns),
            _of(numbers["top_right"], numbers["copies"]),
            _of(numbers["any_right"], numbers["copies"]),
        ]
        for kind, numbers in findings["per_kind"].items()
    ]
    return [
        "### Findings by corruption kind",
        "",
        f"{findings['copies']} single-kind severe copies: the kind applied (and the finding it should "
        "raise) against the top finding (highest severity). Top right "
        f"**{_cell(findings['top_right'])}**; a finding of the right kind among them "
        f"**{_cell(findings['any_right'])}**.",
        "",
        *_table(["applied (expected)", *columns, "top right", "any right"], rows),
    ]


def gate_markdown(gate: Mapping[str, Any], directions: Mapping[str, bool]) -> list[str]:
    """The gate-level section's lines: AUC, default flag, invariance, findings, the calibration plot."""
    definitions = gate["definitions"]
    return [
        "## Gate level",
        "",
        f"Severe: severity >= {definitions['severe_from']:g}, or a random combination whose reader "
        "composite lies below the lowest of that image's clean/mild copies; clean/mild: severity <= "
        f"{definitions['mild_up_to']:g}; re-stored: benign re-storings of the clean image. "
        "`calibration.png` shows the series quality against the reference for every copy.",
        "",
        *_auc_lines(gate["auc"], directions),
        *_flag_lines(gate["flag"]),
        *_invariance_lines(gate["invariance"], definitions["invariance_tolerance"]),
        *_findings_lines(gate["findings"]),
    ]
