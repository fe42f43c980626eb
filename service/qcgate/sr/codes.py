"""Every coded concept qcgate writes into its SR and KOS, standard where the standard has one.

Standard concepts come from DCM, SCT, LN and UCUM. The standard has no codes for MRIQC-style
measures or for our learned scores, so those live in the private coding scheme ``99QCGATE``, declared
in each document's Coding Scheme Identification Sequence (:func:`coding_scheme`). A metric without a
code here cannot be reported (:func:`metric_concept` refuses it), and a test holds every metric qcgate
can produce to having one. ``docs/sr.md`` lists every code with its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.coding import Code

from qcgate.contract.manifest import SITE_PREFIX
from qcgate.core.errors import ReportNotBuildable
from qcgate.core.outcomes import Flag

PRIVATE_SCHEME = "99QCGATE"

# Document structure and context (DCM, LN).
PROCEDURE_REPORTED = Code("25056-3", "LN", "MRI unspecified body region")  # CID 100
QUALITY_ASSESSMENT = Code("111050", "DCM", "Quality Assessment")  # the group's Finding
QUALITY_FINDING = Code("111052", "DCM", "Quality Finding")  # concept name of the flag
IMAGE_QUALITY_RATING = Code("111029", "DCM", "Image Quality Rating")  # the series verdict's 0-100
IMAGE_ARTIFACTS = Code("111207", "DCM", "Image artifact(s)")  # concept name of each finding (CID 7011)
QUALITY_ISSUE = Code("113010", "DCM", "Quality Issue")  # KOS title (CID 7010); never 113001

# Units (UCUM). Annotations in braces are unity ("1") with a name, as CID 7181 uses them.
RATIO = Code("{ratio}", "UCUM", "ratio")
NO_UNITS = Code("1", "UCUM", "no units")
SCORE = Code("{score}", "UCUM", "score")
RANGE_0_100 = Code("{0:100}", "UCUM", "range: 0:100")

# The flag: pass/warn/fail, the value of (DCM, 111052, "Quality Finding").
FLAGS = {
    Flag.PASS: Code("pass", PRIVATE_SCHEME, "Quality within limits"),
    Flag.WARN: Code("warn", PRIVATE_SCHEME, "Quality past a warning limit"),
    Flag.FAIL: Code("fail", PRIVATE_SCHEME, "Quality past a failure limit"),
}


# The verdict's finding kinds, the values of (DCM, 111207, "Image artifact(s)"): DCM where the standard
# has the concept, 99QCGATE otherwise; "<short>-sev" codes the finding's 0-100 severity (a Code Value
# is at most 16 characters, SH: longer ones would become Long Code Values).
ARTIFACT_KINDS = {
    "noise": Code("noise", PRIVATE_SCHEME, "Noise"),
    "blur": Code("blur", PRIVATE_SCHEME, "Blurring"),
    "motion": Code("111210", "DCM", "Motion blur"),
    "ghosting": Code("ghosting", PRIVATE_SCHEME, "Ghosting"),
    "undersampling": Code("undersampling", PRIVATE_SCHEME, "Undersampling artifact"),
    "wrap_around": Code("wrap_around", PRIVATE_SCHEME, "Wrap-around (aliasing)"),
    "bias_field": Code("bias_field", PRIVATE_SCHEME, "Intensity inhomogeneity (bias field)"),
    "spike": Code("spike", PRIVATE_SCHEME, "Spike (herringbone) artifact"),
    "gibbs": Code("gibbs", PRIVATE_SCHEME, "Gibbs ringing"),
}
_SHORT = {"undersampling": "undersamp", "wrap_around": "wrap", "bias_field": "bias", "ghosting": "ghost"}
ARTIFACT_SEVERITY = {
    kind: Code(f"{_SHORT.get(kind, kind)}-sev", PRIVATE_SCHEME, f"{code.meaning} severity")
    for kind, code in ARTIFACT_KINDS.items()
}


@dataclass(frozen=True)
class MetricConcept:
    """How one metric is coded: its value, the unit of the value, and its calibrated 0-100 quality."""

    value: Code
    unit: Code
    quality: Code


def _metric(name: str, meaning: str, unit: Code) -> MetricConcept:
    # Code values are the metric names of the result document; "-q" marks the calibrated quality.
    return MetricConcept(
        Code(name, PRIVATE_SCHEME, meaning),
        unit,
        Code(f"{name}-q", PRIVATE_SCHEME, f"{meaning}, calibrated quality"),
    )


METRICS: dict[str, MetricConcept] = {
    metric.value.value: metric
    for metric in (
        _metric("snr", "Signal-to-noise ratio of the brightest tissue", RATIO),
        _metric("snrd", "Dietrich signal-to-noise ratio", RATIO),
        _metric("cnr", "Contrast-to-noise ratio", RATIO),
        _metric("cjv", "Coefficient of joint variation", RATIO),
        _metric("efc", "Entropy focus criterion", NO_UNITS),
        _metric("fber", "Foreground-background energy ratio", RATIO),
        _metric("gsr", "Ghost-to-signal ratio", RATIO),
        _metric("msm", "Model specialization metric", SCORE),
        _metric("hysnet", "HyS-net quality score", SCORE),
        _metric("rank_effnet", "Rank-trained EfficientNet score", SCORE),
    )
}


def metric_concept(name: str) -> MetricConcept:
    """The codes of metric ``name``; a metric without codes cannot be reported, so it is refused.

    A site's own model (named ``site_*``, loaded from ``site_models_dir``) is coded by its name in
    the private scheme, so a reader tells it from the shipped models it sits beside."""
    if name.startswith(SITE_PREFIX) and len(name) > len(SITE_PREFIX):
        return _metric(name, f"Site model {name} score", SCORE)
    try:
        return METRICS[name]
    except KeyError:
        raise ReportNotBuildable(
            f'metric "{name}" has no code in the {PRIVATE_SCHEME} scheme (service/sr/codes.py); '
            f"known: {', '.join(sorted(METRICS))}"
        ) from None


def coding_scheme() -> CodingSchemeIdentificationItem:
    """The declaration of ``99QCGATE`` every document carries (a new item each time: datasets mutate)."""
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name="qcgate MRI quality-control concepts",
        responsible_organization="qcgate",
    )
