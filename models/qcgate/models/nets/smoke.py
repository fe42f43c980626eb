"""Tiny configurations and a BatchNorm warm-up, for fast checks of untrained networks.

Tests parametrised over :func:`qcgate.models.registry.list_models` build each network from
:data:`TINY_CONFIGS` so that a forward pass, an export and a parity check take seconds. An
untrained network with BatchNorm (``rank_effnet``) outputs a constant in eval mode, since its running
statistics are still the identity and the signal fades through the blocks; a parity check on a
constant proves nothing, so :func:`settle_batchnorm` first measures real statistics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "msm": {"base_width": 4, "depth": 2, "unshuffle": 2, "groups": 2, "tile": 64},
    "hysnet": {
        "stem_width": 4,
        "widths": (4, 8),
        "strides": (2, 2),
        "groups": 2,
        "hyper_width": 4,
        "target_dims": (8, 4, 1),
        "patch": 16,
        "patch_depth": 16,
    },
    "rank_effnet": {"width_mult": 0.1, "depth_mult": 0.1, "tile": 64},
}


def settle_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Set every BatchNorm's running mean and variance to their exact averages over ``batches``.

    Returns the model in eval mode. Weights are untouched; networks without BatchNorm are only
    switched to eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches
        model.train()
        with torch.no_grad():
            for batch in batches:
                model(batch)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
    return model.eval()
