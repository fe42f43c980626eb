"""Who made a report: qcgate as a device observer, and each learned model as a device of its own.

IHE AI Results identifies an algorithm by a Device UID that changes whenever the algorithm changes.
qcgate's Device UID is derived from its software version (a name-based UUID under the ``2.25`` root,
so one version always has one UID); each learned model brings its own from the export manifest
(``provenance.algorithms``), which changes with every retrained or re-exported model. The Observation
Context (TID 1001) lists one Observer Context (TID 1002) per device, qcgate first.

Algorithm Identification (TID 4019) says which algorithm made which value: qcgate's names the
software version, the version of each metric suite and the thresholds that set the flag; a model's
names its version and its weights' sha256.
"""

from __future__ import annotations

import uuid

from highdicom.sr import AlgorithmIdentification, DeviceObserverIdentifyingAttributes, ObserverContext
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from qcgate.assessment.document import AssessmentDocument
from qcgate.core.settings import Threshold
from qcgate.metrics.base import Algorithm

SOFTWARE_NAME = "qcgate"
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:qcgate")


def derived_uid(*names: str) -> UID:
    """A UID under ``2.25`` that is the same for the same names (ISO/IEC 9834-8, name-based UUID)."""
    return UID(f"2.25.{uuid.uuid5(_UID_NAMESPACE, '/'.join(names)).int}")


def qcgate_observer(software_version: str, manufacturer: str) -> ObserverContext:
    """qcgate itself as the device that observed, identified by its version's Device UID."""
    return ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", software_version),
            name=SOFTWARE_NAME,
            manufacturer_name=manufacturer,
            model_name=f"{SOFTWARE_NAME} {software_version}",
        ),
    )


def observer_contexts(result: AssessmentDocument, manufacturer: str) -> list[ObserverContext]:
    """qcgate, then every learned model that scored the series, each with its own Device UID."""
    models = [
        ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
                uid=algorithm.device_uid,
                name=algorithm.name,
                manufacturer_name=manufacturer,
                model_name=f"{algorithm.name} {algorithm.version}",
            ),
        )
        for algorithm in result.provenance.algorithms or []
    ]
    return [qcgate_observer(result.provenance.software_version, manufacturer), *models]


def qcgate_algorithm(result: AssessmentDocument) -> AlgorithmIdentification:
    """qcgate's identification: version, metric suite versions, and the thresholds behind the flag."""
    provenance = result.provenance
    parameters = [f"suite {name} {version}" for name, version in (provenance.metric_versions or {}).items()]
    parameters += [_threshold(name, threshold) for name, threshold in (provenance.thresholds or {}).items()]
    return AlgorithmIdentification(
        name=SOFTWARE_NAME, version=provenance.software_version, parameters=parameters or None
    )


def model_algorithm(algorithm: Algorithm) -> AlgorithmIdentification:
    """A learned model's identification; its Device UID is in the observer context of the same name."""
    return AlgorithmIdentification(
        name=algorithm.name, version=algorithm.version, parameters=[f"sha256 {algorithm.sha256}"]
    )


def _threshold(name: str, threshold: Threshold) -> str:
    """E.g. "threshold msm (quality): warn 60.0, fail 40.0"; a limit that is not set is left out."""
    limits = ", ".join(
        f"{level} {limit}"
        for level, limit in (("warn", threshold.warn), ("fail", threshold.fail))
        if limit is not None
    )
    return f"threshold {name} ({threshold.scale}): {limits or 'no limits'}"
