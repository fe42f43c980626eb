"""MSM, the Model Specialization Metric [Yuan]_: how far a restoration U-Net moves an image.

A U-Net trained on one image population predicts a restored image; the further the input is from
that population, the larger the residual between input and prediction. The paper trains the network
to map clean images to themselves; issue 4 found that variant rates blurred images as *better*, so
training may instead restore corrupted inputs to their clean targets. The network is the same for
both; the training script records which pretext it used.

Shapes: input (B, 1, H, W), H and W multiples of ``unshuffle * 2 ** depth`` (32 by default).
**Padding policy**: the network does not pad; the service pads each slice (or tile) with zeros at
the bottom and right up to the next multiple (zero is air after normalisation, and the score's mask
ignores it).

Default size (``base_width=8, depth=4, unshuffle=2``): 0.49 M parameters, about 0.19 GMAC per
256 x 256 slice. Without the unshuffle (the paper's plain U-Net, ``base_width=16, depth=3,
unshuffle=1``) it has as many parameters and costs 2.3 GMAC: 10x slower on CPU.

.. [Yuan] Yuan S et al., *A Deep-Learning-Based Label-free No-Reference Image Quality Assessment
   Metric: Application in Sodium MRI Denoising* (seed 000_ in ../shared/seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from qcgate.models.nets.spec import ScorerSpec
from qcgate.models.registry import register_model


@dataclass
class MSMConfig:
    """U-Net size and the score's definition.

    ``mask_threshold`` is in units of the normalised input (the stack's foreground 99th percentile):
    voxels above it are the foreground inside which the distance is averaged. ``distance`` is the
    per-voxel distance: ``"l1"`` (mean absolute residual) or ``"l2"`` (mean squared residual).
    ``unshuffle`` folds each ``unshuffle`` x ``unshuffle`` block of pixels into channels before the
    U-Net and unfolds the output after it (pixel unshuffle, as FFDNet does for denoising): lossless,
    and the U-Net then runs on a quarter of the pixels, a quarter of the cost at the same width.
    ``residual_learning`` predicts a correction added to the input, so an untrained network starts
    at the identity and training only has to learn what to change.
    """

    in_channels: int = 1
    base_width: int = 8
    depth: int = 4
    unshuffle: int = 2
    groups: int = 4  # GroupNorm groups: batch-independent, so one slice scores alike in any batch
    residual_learning: bool = True
    mask_threshold: float = 0.1
    distance: Literal["l1", "l2"] = "l1"
    tile: int = 256

    def __post_init__(self) -> None:
        if self.depth < 1 or self.base_width < 1:
            raise ValueError('Arguments "depth" and "base_width" must be at least 1.')
        if self.base_width % self.groups:
            raise ValueError('Argument "base_width" must be a multiple of "groups".')
        if self.distance not in ("l1", "l2"):
            raise ValueError('Argument "distance" must be "l1" or "l2".')
        if self.unshuffle < 1:
            raise ValueError('Argument "unshuffle" must be at least 1.')
        if self.tile % self.spatial_multiple:
            raise ValueError(f'Argument "tile" must be a multiple of {self.spatial_multiple}.')

    @property
    def spatial_multiple(self) -> int:
        """Input sizes must be multiples of this: the unshuffle factor times 2 ** depth."""
        return self.unshuffle * 2**self.depth


def _conv_block(in_channels: int, out_channels: int, groups: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by GroupNorm and SiLU; spatial size unchanged."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.GroupNorm(groups, out_channels),
        nn.SiLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.GroupNorm(groups, out_channels),
        nn.SiLU(),
    )


@register_model("msm")
class MSMNet(nn.Module):
    """Restoration U-Net: (B, 1, H, W) in, predicted image (B, 1, H, W) out."""

    Config = MSMConfig

    def __init__(self, config: MSMConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.base_width * 2**level for level in range(config.depth + 1)]
        self.unshuffle = nn.PixelUnshuffle(config.unshuffle)
        self.shuffle = nn.PixelShuffle(config.unshuffle)
        folded = config.in_channels * config.unshuffle**2
        self.encoders = nn.ModuleList()
        in_channels = folded
        for width in widths[:-1]:
            self.encoders.append(_conv_block(in_channels, width, config.groups))
            in_channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _conv_block(widths[-2], widths[-1], config.groups)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(config.depth)):
            self.ups.append(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            self.decoders.append(_conv_block(2 * widths[level], widths[level], config.groups))
        self.head = nn.Conv2d(widths[0], folded, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.unshuffle(image)  # (B, u*u, H / u, W / u)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)  # (B, C_l, H / (u 2**l), W / (u 2**l))
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)  # (B, C_depth, H / (u 2**depth), W / (u 2**depth))
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))  # (B, C_l, H / (u 2**l), W / (u 2**l))
        correction = self.shuffle(self.head(x))  # (B, 1, H, W)
        return image + correction if self.config.residual_learning else correction

    def scorer(self, with_residual_map: bool = False) -> MSMScorer:
        return MSMScorer(self, with_residual_map=with_residual_map)

    def scorer_spec(self, with_residual_map: bool = False) -> ScorerSpec:
        return ScorerSpec(
            kind="slice2d",
            input_name="image",
            output_names=("score", "residual") if with_residual_map else ("score",),
            spatial_multiple=self.config.spatial_multiple,
            tile=(self.config.tile, self.config.tile),
            stride=(self.config.tile, self.config.tile),
            higher_is_better=False,
            output_meaning=(
                f"mean {'absolute' if self.config.distance == 'l1' else 'squared'} residual between the "
                "input and the U-Net's restoration, inside the foreground (normalised input above "
                f"{self.config.mask_threshold}), in units of the input's normalisation scale"
            ),
        )


class MSMScorer(nn.Module):
    """The exported graph: per-image MSM score, and optionally the residual map.

    score = sum(mask * d(input, prediction)) / max(sum(mask), 1), with mask = input > threshold and
    d the absolute (L1) or squared (L2) difference. The mask comes from the input, not the
    prediction, so a network that blurs the object's edge cannot shrink its own error region. An
    image without foreground scores 0; the service never submits one (it skips empty tiles).
    """

    def __init__(self, net: MSMNet, with_residual_map: bool = False) -> None:
        super().__init__()
        self.net = net
        self.with_residual_map = with_residual_map

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        prediction = self.net(image)  # (B, 1, H, W)
        difference = image - prediction
        distance = difference.abs() if self.net.config.distance == "l1" else difference.square()
        # where() rather than a cast of the comparison: the fp16 converter mistypes Cast nodes.
        mask = torch.where(image > self.net.config.mask_threshold, 1.0, 0.0)  # (B, 1, H, W)
        masked_sum = (distance * mask).sum(dim=(1, 2, 3))  # (B,)
        score = masked_sum / mask.sum(dim=(1, 2, 3)).clamp(min=1.0)  # (B,)
        return (score, difference) if self.with_residual_map else (score,)
