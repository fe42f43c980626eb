"""Every registered network, tiny and untrained, exported with the real exporter: the plumbing's
fixture for tests that need ONNX files and a manifest but not trained weights (needs torch)."""

from __future__ import annotations

from pathlib import Path

import torch

from qcgate.contract.manifest import Provenance, utc_now
from qcgate.export.onnx_export import export_model, untrained_model
from qcgate.models.nets.smoke import TINY_CONFIGS
from qcgate.models.registry import list_models

PROVENANCE = Provenance(data_version="test", seed=0, steps=0, git_commit="none", created=utc_now())


def tiny_model(name: str) -> torch.nn.Module:
    return untrained_model(name, TINY_CONFIGS[name])


def export_tiny_models(out: Path) -> dict[str, torch.nn.Module]:
    """Export every registered network into ``out`` (one manifest.json); returns the torch models."""
    models = {name: tiny_model(name) for name in list_models()}
    for model in models.values():
        export_model(model, out, version="0.0.1", provenance=PROVENANCE)
    return models
