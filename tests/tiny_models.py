"""Every registered network, tiny and untrained, exported with the real exporter: the plumbing's
fixture for tests that need ONNX files and a manifest but not trained weights (needs torch)."""

from __future__ import annotations

from pathlib import Path

import torch

from export.manifest import Provenance, utc_now
from export.onnx_export import export_model, smooth_images
from models.nets.smoke import TINY_CONFIGS, settle_batchnorm
from models.registry import create_model, list_models

PROVENANCE = Provenance(data_version="test", seed=0, steps=0, git_commit="none", created=utc_now())


def tiny_model(name: str) -> torch.nn.Module:
    """Seeded, with batch-norm statistics settled on smooth images so scores are not degenerate."""
    torch.manual_seed(0)
    model = create_model(name, TINY_CONFIGS[name])
    spec = model.scorer_spec()
    return settle_batchnorm(
        model, [torch.from_numpy(smooth_images((4, 1, *spec.tile), seed=s)) for s in (1, 2)]
    )


def export_tiny_models(out: Path) -> dict[str, torch.nn.Module]:
    """Export every registered network into ``out`` (one manifest.json); returns the torch models."""
    models = {name: tiny_model(name) for name in list_models()}
    for model in models.values():
        export_model(model, out, version="0.0.1", provenance=PROVENANCE)
    return models
