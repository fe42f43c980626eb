"""HyS-net [Qi]_: a 3D ResNet whose quality regressor's weights are generated from the patch itself.

Three parts, as in the paper (after HyperIQA [Su2020]_):

1. **Spatial feature extractor**: a small 3D ResNet (a strided stem, then one basic residual block
   per stage). The pooled features of every stage are concatenated and projected to the target
   network's input vector (HyperIQA's multi-scale "local distortion aware" vector, 224-d there).
2. **Content-adaptive hyper-network**: one branch per target layer, each two 1x1x1 convolutions, a
   global max pool and a fully connected layer whose output is reshaped into that layer's weights
   and bias (HyS-net Fig. 2).
3. **Target network**: fully connected layers using the generated parameters, sigmoid between them.

**Scaled down**: HyperIQA's target chain is 224 -> 112 -> 56 -> 28 -> 14 -> 1 and HyS-net uses three
layers. The default ``target_dims=(64, 32, 16, 1)`` keeps HyS-net's three generated layers and the
halving of HyperIQA's chain at 64 wide, so that a CPU trains it in minutes; pass
``target_dims=(224, 112, 56, 28, 14, 1)`` for HyperIQA's exact chain (0.83 M parameters with the
default backbone, most of them in the generating layers).

Input (B, 1, D, H, W) of any size (the default patch is 32 slices of 64 x 64, scored with half-patch
strides at inference as the paper's 96^3 with stride 48); output (B,) quality. An auxiliary head
regresses the true SNR from the same pooled features during training; it is not exported.

Default size: 0.28 M parameters (most in the coarsest stage and the generating layers), about
20 MMAC per patch: the stem and the first three stages halve the resolution, so the network sees
fine detail through the stem only. This keeps a 176 x 256 x 256 volume (490 patches) within seconds
on two CPU cores; ``strides=(1, 2, 2, 2)`` keeps more resolution at 5x the cost.

.. [Qi] Qi K, Li H, Rong C, Gong Y, Li C, Zheng H, Wang S, *Blind Image Quality Assessment for MRI
   with A Deep Three-dimensional content-adaptive Hyper-Network* (seed 001_ in ../shared/seeds).
.. [Su2020] Su S et al., *Blindly assess image quality in the wild guided by a self-adaptive hyper
   network*, CVPR 2020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from qcgate.models.nets.spec import ScorerSpec
from qcgate.models.registry import register_model


@dataclass
class HySNetConfig:
    """Backbone widths and strides, hyper-network width and the generated target chain.

    ``target_dims[0]`` is the target network's input width (the projected multi-scale features),
    ``target_dims[-1]`` must be 1 (the quality). ``stem_stride`` and ``strides`` set the backbone's
    resolution; their product must divide the patch: ``patch_depth`` slices of ``patch`` x ``patch``.
    The patch spans 64 pixels in-plane because the label is a whole slab's: on 32 x 32 windows a
    network found almost nothing of it (docs/training.md).
    """

    in_channels: int = 1
    stem_width: int = 8
    widths: tuple[int, ...] = (8, 16, 32, 64)
    stem_stride: int = 2
    strides: tuple[int, ...] = (2, 2, 2, 1)
    groups: int = 4
    hyper_width: int = 16
    target_dims: tuple[int, ...] = (64, 32, 16, 1)
    patch: int = 64
    patch_depth: int = 32

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError('Arguments "widths" and "strides" must be non-empty and of equal length.')
        if len(self.target_dims) < 2 or self.target_dims[-1] != 1:
            raise ValueError('Argument "target_dims" must have at least two entries and end with 1.')
        if any(width % self.groups for width in (self.stem_width, *self.widths)):
            raise ValueError('Every width must be a multiple of "groups".')
        if self.patch % self.total_stride or self.patch_depth % self.total_stride:
            raise ValueError(
                'Arguments "patch" and "patch_depth" must be multiples of the total stride '
                f"{self.total_stride}."
            )

    @property
    def total_stride(self) -> int:
        return self.stem_stride * math.prod(self.strides)


class BasicBlock3d(nn.Module):
    """ResNet basic block in 3D: two 3x3x3 convolutions, GroupNorm, identity or 1x1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.GroupNorm(groups, out_channels),
            )
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))  # (B, C_out, D / s, H / s, W / s)


class HyperBranch(nn.Module):
    """Generates one target layer's weight (B, out, in) and bias (B, out) from a feature map."""

    def __init__(self, feature_channels: int, hyper_width: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.features = nn.Sequential(
            nn.Conv3d(feature_channels, hyper_width, 1),
            nn.ReLU(),
            nn.Conv3d(hyper_width, hyper_width, 1),
            nn.ReLU(),
        )
        self.generate = nn.Linear(hyper_width, out_dim * in_dim + out_dim)

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(feature_map).amax(dim=(2, 3, 4))  # (B, hyper_width): global max pool
        parameters = self.generate(pooled)  # (B, out * in + out)
        split = self.out_dim * self.in_dim
        weight = parameters[:, :split].reshape(-1, self.out_dim, self.in_dim)  # (B, out, in)
        return weight, parameters[:, split:]  # (B, out, in), (B, out)


@register_model("hysnet")
class HySNet(nn.Module):
    """3D patch (B, 1, D, H, W) -> quality (B,), plus the auxiliary SNR (B,) from :meth:`forward_with_snr`."""

    Config = HySNetConfig

    def __init__(self, config: HySNetConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv3d(
                config.in_channels, config.stem_width, 3, stride=config.stem_stride, padding=1, bias=False
            ),
            nn.GroupNorm(config.groups, config.stem_width),
            nn.ReLU(),
        )
        stages, in_channels = [], config.stem_width
        for width, stride in zip(config.widths, config.strides, strict=True):
            stages.append(BasicBlock3d(in_channels, width, stride, config.groups))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        dims = config.target_dims
        self.target_input = nn.Linear(sum(config.widths), dims[0])
        self.hyper = nn.ModuleList(
            HyperBranch(config.widths[-1], config.hyper_width, dims[i], dims[i + 1])
            for i in range(len(dims) - 1)
        )
        self.snr_head = nn.Linear(sum(config.widths), 1)

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        return self.forward_with_snr(patch)[0]

    def forward_with_snr(self, patch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quality (B,) and the auxiliary SNR estimate (B,), in the units training regresses."""
        x = self.stem(patch)  # (B, C0, D / s0, H / s0, W / s0)
        pooled = []
        for stage in self.stages:
            x = stage(x)  # (B, C_i, D / S_i, H / S_i, W / S_i)
            pooled.append(x.mean(dim=(2, 3, 4)))  # (B, C_i)
        multi_scale = torch.cat(pooled, dim=1)  # (B, sum(widths))
        hidden = self.target_input(multi_scale).unsqueeze(-1)  # (B, dims[0], 1)
        for index, branch in enumerate(self.hyper):
            weight, bias = branch(x)  # (B, out, in), (B, out)
            hidden = torch.bmm(weight, hidden) + bias.unsqueeze(-1)  # (B, out, 1)
            if index < len(self.hyper) - 1:
                hidden = torch.sigmoid(hidden)
        return hidden.reshape(-1), self.snr_head(multi_scale).reshape(-1)  # (B,), (B,)

    def scorer(self) -> HySNetScorer:
        return HySNetScorer(self)

    def scorer_spec(self) -> ScorerSpec:
        tile = (self.config.patch_depth, self.config.patch, self.config.patch)
        return ScorerSpec(
            kind="patch3d",
            input_name="patch",
            output_names=("score",),
            spatial_multiple=1,  # strided convolutions pad: any size works (patches are fixed anyway)
            tile=tile,
            stride=tuple(side // 2 for side in tile),
            higher_is_better=True,
            output_meaning="predicted quality label of the patch (the training label; higher is better)",
        )


class HySNetScorer(nn.Module):
    """The exported graph: quality (B,) only; the SNR head is a training aid."""

    def __init__(self, net: HySNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, patch: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.net(patch),)  # (B,)
