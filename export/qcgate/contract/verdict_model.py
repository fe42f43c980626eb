"""Apply the verdict model: artifact features -> a calibrated 0-100 ``quality`` and ``findings``.

The model is one JSON document (written by ``qcgate.models.verdict.train``) holding, for every
feature of :data:`qcgate.contract.artifacts.FEATURE_NAMES`, the knots of a piecewise-linear ramp
basis ``r_jk(f) = clip((f - t_{k-1}) / (t_k - t_{k-1}), 0, 1)``, and

* ``quality``: ``raw = 100 * sigmoid(b - sum_jk w_jk r_jk(f_j))`` with every ``w_jk >= 0`` (monotone:
  no feature can make an image better by getting worse), or, with ``"form": "worst_kind"``, an
  image as good as its worst artifact: ``raw = 100 (1 - max_K sigmoid(a_K + sum_jk w_jkK r_jk(f_j)))``,
  one monotone head per kind K (every ``w_jkK >= 0``); then an isotonic calibration
  (``np.interp`` over its knots) onto the reference label's scale; higher is better. The quality
  head may have knots of its own whose first knot sits at what clean images reach (a dead zone):
  a feature then counts only beyond the clean range, so an image stored another way, whose
  features move within that range (air measured or filled in, a crop), keeps its quality;
* ``findings``: per kind, ``severity = 100 * sigmoid(a + sum_jk v_jk r_jk(f_j))``, reported when at
  least the kind's ``threshold``, with the slices whose own severity is within 80 % of the worst.
  With a ``kind_head`` (a softmax over the kinds on the same basis, trained to tell the kinds
  apart), the most likely kind takes the largest of those severities and every other kind that
  times its probability relative to the most likely one: the heads say how bad, the softmax what.

Since 0.7.0 a model may also read learned metrics (``learned_inputs``, oriented higher-is-worse, e.g.
``msm`` and minus ``rank_effnet``): the caller hands their per-slice scores of the stack, the model
takes them at the slices its features came from, their median as the stack's value, and a score
that is missing reads ``learned_fill`` (what clean training copies give). The shipped model's
finding heads give them no weight; its quality head does.

Where the air holds no noise (zero-filled, skull-stripped, cropped away: ``air_usable`` 0) the air
features are not measured. The quality head then reads the air its anatomy predicts (its own
``air_fill`` and ``air_fill_weights``: zero-filling the air of a noisy or blurred image must not
make it look clean), the finding heads the document's ``air_fill``, what clean air gives (the median
over clean training copies): a finding names damage that was measured.

numpy only; part of the torch-free contract the runtime calls. The shipped model is package data:
:func:`default_verdict_path`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from qcgate.contract.artifacts import AIR_FEATURES, ArtifactFeatures, artifact_features
from qcgate.contract.resolution import acquired_grid

__all__ = [
    "FINDING_KINDS",
    "KIND_OF_CORRUPTION",
    "FORMAT",
    "VERDICT_NAME",
    "Finding",
    "Verdict",
    "VerdictModel",
    "default_verdict_path",
    "load_verdict_model",
]

FORMAT = "qcgate-verdict/1"
# The kinds of finding the verdict reports, and the kind each simulated corruption is reported as
# (the simulator's names are more specific). Training, the runtime and the benchmark share these.
FINDING_KINDS: tuple[str, ...] = (
    "noise",
    "blur",
    "motion",
    "ghosting",
    "undersampling",
    "wrap_around",
    "bias_field",
    "spike",
    "gibbs",
)
KIND_OF_CORRUPTION: dict[str, str] = {
    "noise": "noise",
    "blur": "blur",
    "undersampling_1d": "undersampling",
    "undersampling_2d": "undersampling",
    "motion_translation": "motion",
    "motion_rotation": "motion",
    "nyquist_ghost": "ghosting",
    "spike": "spike",
    "gibbs": "gibbs",
    "bias_field": "bias_field",
    "wrap_around": "wrap_around",
}
VERDICT_NAME = "verdict.json"


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: float  # 0..100
    slices: tuple[int, ...]  # indices into the stack's first axis, worst first


@dataclass(frozen=True)
class Verdict:
    quality: float | None  # 0..100, None when nothing is assessable
    findings: tuple[Finding, ...]
    severities: dict[str, float]  # every kind's severity, reported or not
    features: ArtifactFeatures | None


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


@dataclass(frozen=True)
class VerdictModel:
    document: Mapping[str, Any]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.document["feature_names"])

    def basis(self, rows: np.ndarray, knots: Mapping[str, Any] | None = None) -> np.ndarray:
        """(n, features) -> (n, total ramps), in the order of ``feature_names`` then knots (the
        document's ``knots`` unless others are given)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        knots_of = self.document["knots"] if knots is None else knots
        columns = []
        for j, name in enumerate(self.feature_names):
            edges = np.asarray(knots_of[name])
            f = rows[:, j : j + 1]
            columns.append(np.clip((f - edges[:-1]) / np.diff(edges), 0.0, 1.0))
        return np.concatenate(columns, axis=1)

    def quality(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated 0..100 quality of each feature row; higher is better."""
        head = self.document["quality"]
        basis = self.basis(rows, head.get("knots"))
        if head.get("form") == "worst_kind":
            # As good as its worst artifact: one monotone logistic head per kind (every weight >= 0).
            z = np.asarray(head["intercepts"]) + basis @ np.asarray(head["weights"])  # (n, K)
            raw = 100.0 * (1.0 - _sigmoid(z).max(axis=1))
        else:
            raw = 100.0 * _sigmoid(head["intercept"] - basis @ np.asarray(head["weights"]))
        calibration = head["calibration"]
        return np.clip(np.interp(raw, calibration["x"], calibration["y"]), 0.0, 100.0)

    def severities(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """0..100 severity of each finding kind for each feature row; higher is worse."""
        basis = self.basis(rows)
        severities = {
            kind: 100.0 * _sigmoid(head["intercept"] + basis @ np.asarray(head["weights"]))
            for kind, head in self.document["findings"].items()
        }
        head = self.document.get("kind_head")
        if not head:
            return severities
        z = np.asarray(head["intercepts"]) + basis @ np.asarray(head["weights"])  # (n, K)
        share = np.exp(z - z.max(axis=1, keepdims=True))  # softmax over kinds / its largest
        overall = np.max(np.stack(list(severities.values()), axis=1), axis=1)  # (n,)
        return {kind: overall * share[:, i] for i, kind in enumerate(head["kinds"])}

    def rows(
        self,
        values: Mapping[str, float] | Mapping[str, np.ndarray],
        air_usable: float | np.ndarray | None = None,
        head: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """(n, features) from feature values; where ``air_usable`` is 0 the air features read a
        fill instead of the placeholder the extractor leaves: ``head``'s (the quality head's, for
        its rows) or else the document's ``air_fill``, what clean air gives, plus, with
        ``air_fill_weights``, what this row's anatomy predicts of its air (``air_fill[a] +
        sum_f w[a][f] * value[f]``, every ``w >= 0``, so the fill, like the heads, never improves as
        a feature gets worse). The finding heads read the document's constant fill: a finding
        names damage that was measured, never damage inferred for air that is not there."""
        rows = np.stack(
            [np.atleast_1d(np.asarray(values[name], dtype=np.float64)) for name in self.feature_names], 1
        )
        source = head if head is not None and "air_fill" in head else self.document
        fill = source.get("air_fill")
        if fill and air_usable is not None:
            usable = np.atleast_1d(np.asarray(air_usable, dtype=np.float64))
            unusable = np.broadcast_to(usable <= 0, len(rows))
            weights = source.get("air_fill_weights") or {}
            for j, name in enumerate(self.feature_names):
                if name in AIR_FEATURES and name in fill:
                    predicted = float(fill[name]) + sum(
                        float(w) * rows[:, self.feature_names.index(other)]
                        for other, w in weights.get(name, {}).items()
                    )
                    rows[:, j] = np.where(unusable, predicted, rows[:, j])
        return rows

    def quality_of(
        self, values: Mapping[str, float] | Mapping[str, np.ndarray], air_usable: float | np.ndarray | None
    ) -> np.ndarray:
        """Calibrated quality from feature values, missing air filled as the quality head fills it."""
        return self.quality(self.rows(values, air_usable, self.document["quality"]))

    @property
    def learned_inputs(self) -> tuple[str, ...]:
        """The learned metrics this model reads beside the artifact features (none before 0.7.0)."""
        return tuple(self.document.get("learned_inputs", ()))

    def with_learned(
        self, features: ArtifactFeatures, learned: Mapping[str, Sequence[float]] | None
    ) -> ArtifactFeatures:
        """``features`` with each of :attr:`learned_inputs` added, read off the metric's per-slice
        scores of the whole stack (``learned[name][i]`` for slice ``i``, oriented higher-is-worse)
        at the slices the features came from, the stack's value their median. A metric that is
        missing or could not score those slices reads ``learned_fill``, what clean training copies
        give: the verdict still judges the stack from its artifact features alone."""
        if not self.learned_inputs:
            return features
        values, per_slice = dict(features.values), dict(features.per_slice)
        for name in self.learned_inputs:
            fill = float(self.document["learned_fill"][name])
            scores = np.asarray((learned or {}).get(name, ()), dtype=np.float64)
            if scores.size > int(features.slices.max()):
                chosen = scores[features.slices]
            else:
                chosen = np.full(len(features.slices), np.nan)
            chosen = np.where(np.isfinite(chosen), chosen, fill)
            values[name], per_slice[name] = float(np.median(chosen)), chosen
        return replace(features, values=values, per_slice=per_slice)

    def apply(
        self, features: ArtifactFeatures | None, learned: Mapping[str, Sequence[float]] | None = None
    ) -> Verdict:
        """The verdict of one stack from its :class:`ArtifactFeatures` (``None``: not assessable)
        and, for a model with :attr:`learned_inputs`, the learned metrics' per-slice scores."""
        if features is None:
            return Verdict(None, (), {}, None)
        features = self.with_learned(features, learned)
        row = self.rows(features.values, features.air_usable)
        quality = float(self.quality_of(features.values, features.air_usable)[0])
        stack = {kind: float(v[0]) for kind, v in self.severities(row).items()}
        per_slice = self.severities(self.rows(features.per_slice, features.air_per_slice))
        findings = []
        for kind, severity in sorted(stack.items(), key=lambda item: -item[1]):
            if severity < self.document["findings"][kind]["threshold"]:
                continue
            values = per_slice[kind]
            worst = np.argsort(-values)
            chosen = [int(features.slices[i]) for i in worst if values[i] >= 0.8 * values.max()]
            findings.append(Finding(kind, round(severity, 1), tuple(chosen)))
        return Verdict(round(quality, 1), tuple(findings), stack, features)

    def assess(
        self,
        stack: np.ndarray,
        max_slices: int = 8,
        learned: Mapping[str, Sequence[float]] | None = None,
        acquired_share: tuple[float, float] | None = None,
    ) -> Verdict:
        """Features and verdict of a 2D ``(R, C)`` or 3D ``(S, R, C)`` magnitude stack (at most
        ``max_slices`` slices with anatomy assessed, evenly spread); ``learned``: per-slice scores
        of the learned metrics the model reads (:meth:`with_learned`); ``acquired_share``: the
        share of the displayed k-space the header says was acquired along (rows, columns), whose
        grid the features are then measured on (:mod:`qcgate.contract.resolution`)."""
        features = artifact_features(acquired_grid(stack, acquired_share), max_slices=max_slices)
        return self.apply(features, learned)


def default_verdict_path() -> Path:
    """``verdict/verdict.json`` of the installed ``qcgate.contract`` package (package data)."""
    return Path(str(resources.files("qcgate.contract").joinpath("verdict", VERDICT_NAME)))


def load_verdict_model(path: Path | str) -> VerdictModel:
    """The verdict model in ``path``; raises ``ValueError`` for another format."""
    document = json.loads(Path(path).read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f'Argument "path" must hold a {FORMAT} document, got {document.get("format")!r}.')
    return VerdictModel(document)
