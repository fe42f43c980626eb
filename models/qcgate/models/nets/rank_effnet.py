"""Reference-free EfficientNet scorer trained from pairwise rankings, after Tang et al. [Tang]_.

The scorer is EfficientNet-b0 [Tan2019]_ (MBConv blocks with squeeze-and-excitation, compound
width/depth scaling) written out here without torchvision, with a one-output head. The paper's
scorer saw image-minus-reference; ours sees the image alone (the paper's "without reference
subtraction" variant, 79.4 % ranking accuracy there), normalised by the stack's foreground 99th
percentile. **Higher score is better** here (the paper's score was lower-is-better); the pairwise
classifier learns either convention, the manifest records ours.

Training only: :class:`PairwiseClassifier`, the paper's symmetric three-way classifier of a score
difference, trained jointly with the scorer by cross-entropy. It is never exported.

Default size (``width_mult=0.25, depth_mult=0.35``): 0.20 M parameters, about 37 MMAC per 256 x 256
slice; ``width_mult=1, depth_mult=1`` is b0 (4.0 M parameters with a one-output head).

.. [Tang] Tang C et al., *Incorporating Radiologist Knowledge Into MRI Quality Metrics for Machine
   Learning Using Rank-Based Ratings* (seed 002_ in ../shared/seeds); code uwmri/LearnedImagingMetrics.
.. [Tan2019] Tan M, Le QV, *EfficientNet: Rethinking model scaling for convolutional neural
   networks*, ICML 2019. arXiv:1905.11946
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from qcgate.models.nets.spec import ScorerSpec
from qcgate.models.registry import register_model

# EfficientNet-b0 stages: (expand ratio, kernel, stride, output channels, repeats).
B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
B0_STEM, B0_HEAD = 32, 1280


def _round_channels(channels: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: nearest multiple of 8, never below 90 % of the request."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


@dataclass
class RankEffNetConfig:
    """Compound scaling multipliers and the head.

    ``dropout`` before the one-output head is the paper's 0.5. BatchNorm as in b0: at inference it
    is a fixed affine map, so a slice scores the same in any batch.
    """

    in_channels: int = 1
    width_mult: float = 0.25
    depth_mult: float = 0.35
    se_ratio: float = 0.25
    dropout: float = 0.5
    tile: int = 256

    def __post_init__(self) -> None:
        if self.width_mult <= 0 or self.depth_mult <= 0:
            raise ValueError('Arguments "width_mult" and "depth_mult" must be positive.')


class SqueezeExcitation(nn.Module):
    """Channel gating from global context: pool, reduce, SiLU, expand, sigmoid, scale."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        gate = torch.sigmoid(self.expand(self.activation(self.reduce(gate))))
        return x * gate  # (B, C, H, W)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise kxk, SE, 1x1 project, residual if shapes match."""

    def __init__(
        self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int, se_ratio: float
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU()]
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
            SqueezeExcitation(hidden, max(1, int(in_channels * se_ratio))),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)  # (B, C_out, H / s, W / s)
        return x + y if self.residual else y


@register_model("rank_effnet")
class RankEffNet(nn.Module):
    """EfficientNet-style scorer: (B, 1, H, W) -> score (B,), higher is better."""

    Config = RankEffNetConfig

    def __init__(self, config: RankEffNetConfig) -> None:
        super().__init__()
        self.config = config
        stem = _round_channels(B0_STEM * config.width_mult)
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, stem, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem),
            nn.SiLU(),
        )
        blocks: list[nn.Module] = []
        in_channels = stem
        for expand, kernel, stride, channels, repeats in B0_STAGES:
            out_channels = _round_channels(channels * config.width_mult)
            for index in range(math.ceil(repeats * config.depth_mult)):
                blocks.append(
                    MBConv(
                        in_channels,
                        out_channels,
                        expand,
                        kernel,
                        stride if index == 0 else 1,
                        config.se_ratio,
                    )
                )
                in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        head = _round_channels(B0_HEAD * config.width_mult)
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, head, 1, bias=False), nn.BatchNorm2d(head), nn.SiLU()
        )
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(head, 1)
        self.apply(_init_weights)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)  # (B, C_stem, H / 2, W / 2)
        x = self.blocks(x)  # (B, C_last, H / 32, W / 32)
        x = self.head(x).mean(dim=(2, 3))  # (B, C_head): global average pool
        return self.fc(self.dropout(x)).reshape(-1)  # (B,)

    def scorer(self) -> RankEffNetScorer:
        return RankEffNetScorer(self)

    def scorer_spec(self) -> ScorerSpec:
        return ScorerSpec(
            kind="slice2d",
            input_name="image",
            output_names=("score",),
            spatial_multiple=1,  # strided convolutions pad, so any size works: no padding needed
            tile=(self.config.tile, self.config.tile),
            stride=(self.config.tile, self.config.tile),
            higher_is_better=True,
            output_meaning="score learned from a simulated reader's pairwise rankings (higher is better)",
        )


class RankEffNetScorer(nn.Module):
    """The exported graph: the score (B,) as a one-element tuple, like every scorer."""

    def __init__(self, net: RankEffNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.net(image),)  # (B,)


def _init_weights(module: nn.Module) -> None:
    """EfficientNet's reference initialisation: fan-out He normal convolutions, uniform head.

    An untrained network in eval mode still outputs little more than the head's bias, because its
    BatchNorm statistics are still the identity; :func:`qcgate.models.nets.smoke.settle_batchnorm` fixes
    that for checks of untrained networks.
    """
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        bound = 1.0 / math.sqrt(module.out_features)
        nn.init.uniform_(module.weight, -bound, bound)
        nn.init.zeros_(module.bias)


# Outcome classes of a ranked pair (a, b), in the classifier's output order.
A_BETTER, SIMILAR, B_BETTER = 0, 1, 2


def _difference_mlp(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(1, hidden), nn.Sigmoid(), nn.Linear(hidden, 1))


class PairwiseClassifier(nn.Module):
    """The symmetric three-way classifier of a score difference (training only).

    With d = score_a - score_b, the logits are [f(d), g(d) + g(-d), f(-d)]: "a better", "similar"
    and "b better". Swapping the pair negates d, which swaps the first and last logits and leaves
    "similar" unchanged, so the classifier cannot prefer a position. f and g are each
    Linear(1, 16) -> Sigmoid -> Linear(16, 1). Train with ``nn.CrossEntropyLoss`` on the logits
    (softmax is inside the loss); Adam at 1e-3 here and 1e-4 for the scorer, as in the paper.
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.f = _difference_mlp(hidden)
        self.g = _difference_mlp(hidden)

    def forward(self, score_a: torch.Tensor, score_b: torch.Tensor) -> torch.Tensor:
        d = (score_a - score_b).reshape(-1, 1)  # (B, 1)
        similar = self.g(d) + self.g(-d)  # (B, 1)
        return torch.cat([self.f(d), similar, self.f(-d)], dim=1)  # (B, 3) logits

    def probabilities(self, score_a: torch.Tensor, score_b: torch.Tensor) -> torch.Tensor:
        """Softmax over [a better, similar, b better], (B, 3)."""
        return torch.softmax(self(score_a, score_b), dim=1)
