"""The pairwise judgements as a training dataset: a JSON list of pairs beside an ``.npz`` of pixels.

The training side (``python -m qcgate.models.training.finetune_pairs``) must not import the runtime,
so the runtime writes everything it needs: per judgement the two series' UIDs, the choice, the
reviewer, the protocol and the qualities qcgate gave them, and, in ``<name>.npz``, a central slab of
each series (:data:`SLAB_SLICES` slices around the middle of its largest stack, float32, rescaled
but not normalised: training normalises with the model's own input contract). A series whose pixels
retention already pruned has no slab; its pairs are listed with ``"slabs": false``.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy.orm import Session

from qcgate.assessment.pipeline import read_datasets
from qcgate.core.settings import Settings
from qcgate.imaging.volume import build_stacks
from qcgate.store.pairs import all_judgements
from qcgate.store.repository import instance_paths
from qcgate.store.spool import replace_durably
from qcgate.store.tables import PairJudgement, Series
from qcgate.store.trends import quality_history

SLAB_SLICES = 5
EXPORT_FORMAT = 1


def central_slab(series: Series, settings: Settings, session: Session) -> np.ndarray | None:
    """The middle :data:`SLAB_SLICES` slices (S, R, C) of the series' largest stack, None when its
    pixels are gone or hold no stack."""
    if series.pixels_pruned_at is not None:
        return None
    paths = [
        settings.spool_dir / path
        for path, sop_class in instance_paths(session, series.id)
        if sop_class in settings.scored_sop_classes
    ]
    present = [path for path in paths if path.exists()]
    if not present:
        return None
    stacks = build_stacks(read_datasets(present))
    if not stacks:
        return None
    voxels = max(stacks, key=lambda stack: stack.voxels.size).voxels
    start = max(0, voxels.shape[0] // 2 - SLAB_SLICES // 2)
    return np.ascontiguousarray(voxels[start : start + SLAB_SLICES], dtype=np.float32)


def export_pairs(session: Session, settings: Settings, out_dir: Path, now: datetime) -> dict[str, Any]:
    """Write ``pairs-<time>.json`` and ``pairs-<time>.npz`` into ``out_dir``; returns the JSON."""
    judgements = all_judgements(session)
    series: dict[int, Series] = {}
    for judgement in judgements:
        series[judgement.left_series_id] = judgement.left
        series[judgement.right_series_id] = judgement.right
    uids = [s.series_instance_uid for s in series.values()]
    quality = {
        point.series_instance_uid: point.quality for point in quality_history(session, series_uids=uids)
    }
    slabs: dict[str, np.ndarray] = {}
    for row in series.values():
        slab = central_slab(row, settings, session)
        if slab is not None:
            slabs[row.series_instance_uid] = slab
    stem = f"pairs-{now:%Y%m%dT%H%M%S%fZ}"
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = io.BytesIO()
    np.savez_compressed(archive, **cast(dict[str, Any], slabs))
    replace_durably(out_dir / f"{stem}.npz", [archive.getbuffer()])
    dataset = {
        "format": EXPORT_FORMAT,
        "created_at": now.isoformat(),
        "slabs_file": f"{stem}.npz",
        "slab_slices": SLAB_SLICES,
        "pairs": [_pair(judgement, quality, slabs) for judgement in judgements],
    }
    replace_durably(out_dir / f"{stem}.json", [json.dumps(dataset, indent=1).encode()])
    return dataset | {"path": str(out_dir / f"{stem}.json")}


def _pair(
    judgement: PairJudgement, quality: dict[str, float], slabs: dict[str, np.ndarray]
) -> dict[str, Any]:
    left, right = judgement.left.series_instance_uid, judgement.right.series_instance_uid
    return {
        "left": left,
        "right": right,
        "choice": judgement.choice,
        "reviewer": judgement.reviewer,
        "protocol": judgement.protocol,
        "created_at": judgement.created_at.isoformat(),
        "left_quality": quality.get(left),
        "right_quality": quality.get(right),
        "slabs": left in slabs and right in slabs,
    }
