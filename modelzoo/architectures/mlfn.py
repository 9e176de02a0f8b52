"""MLFN (multi-level factorisation net) as torchreid builds it.

Reference: Chang et al., Multi-Level Factorisation Net for Person
Re-Identification, CVPR 2018.  Each of the 16 blocks has ``groups`` latent
factor modules (the groups of a grouped convolution) and a factor selection
module that weighs them per image; the embedding averages a projection of the
pooled features with a projection of every block's factor selection.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from modelzoo.architectures._heads import ReIDModel, check_builder_kwargs, classifier_layer, init_reid_weights
from modelzoo.architectures._registry import register

GROUPS = 32
STEM_CHANNELS = 64
EMBEDDING_DIM = 1024
# Stages as (blocks, output channels, stride of the first block, factor-selection hidden channels).
MLFN_STAGES = (
    (3, 256, 1, (128, 64)),
    (4, 512, 2, (256, 128)),
    (6, 1024, 2, (512, 128)),
    (3, 2048, 2, (512, 128)),
)


def factor_selection_module(in_channels: int, hidden: tuple[int, int], groups: int) -> nn.Sequential:
    """Per-image weights in (0, 1) for each factor module, from the block's pooled input."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(in_channels, hidden[0], 1),
        nn.BatchNorm2d(hidden[0]),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden[0], hidden[1], 1),
        nn.BatchNorm2d(hidden[1]),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden[1], groups, 1),
        nn.BatchNorm2d(groups),
        nn.Sigmoid(),
    )


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Strided 1x1 convolution and batch norm, for a shortcut that changes shape."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class MLFNBlock(nn.Module):
    """Bottleneck whose grouped 3x3 convolution (the factor modules) is gated group by group."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        selection_hidden: tuple[int, int],
        groups: int = GROUPS,
    ) -> None:
        """Build the block.

        Args:
            in_channels: Input channels.
            out_channels: Output channels; the bottleneck uses half of them.
            stride: Stride of the grouped convolution (and of the shortcut).
            selection_hidden: Hidden channels of the factor selection module.
            groups: Number of factor modules.
        """
        super().__init__()
        mid_channels = out_channels // 2
        self.groups = groups
        self.fm_conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.fm_bn1 = nn.BatchNorm2d(mid_channels)
        self.fm_conv2 = nn.Conv2d(
            mid_channels, mid_channels, 3, stride=stride, padding=1, groups=groups, bias=False
        )
        self.fm_bn2 = nn.BatchNorm2d(mid_channels)
        self.fm_conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.fm_bn3 = nn.BatchNorm2d(out_channels)
        self.fsm = factor_selection_module(in_channels, selection_hidden, groups)
        needs_projection = in_channels != out_channels or stride > 1
        self.downsample = projection_shortcut(in_channels, out_channels, stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its factor selection, shaped ``(batch, groups, 1, 1)``."""
        selection = self.fsm(x)
        reduced = F.relu(self.fm_bn1(self.fm_conv1(x)))
        factors = F.relu(self.fm_bn2(self.fm_conv2(reduced)))
        # Group g of the grouped convolution owns a contiguous run of channels.
        factors = factors * selection.repeat_interleave(factors.size(1) // self.groups, dim=1)
        out = F.relu(self.fm_bn3(self.fm_conv3(factors)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + out), selection


def mlfn_blocks(groups: int = GROUPS) -> nn.ModuleList:
    """The 16 blocks of MLFN, in order."""
    blocks = []
    in_channels = STEM_CHANNELS
    for count, out_channels, stride, hidden in MLFN_STAGES:
        for index in range(count):
            blocks.append(MLFNBlock(in_channels, out_channels, stride if index == 0 else 1, hidden, groups))
            in_channels = out_channels
    return nn.ModuleList(blocks)


def conv1x1_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """Projection of a pooled feature to the embedding: 1x1 conv, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class MLFN(ReIDModel):
    """Multi-level factorisation net with a 1024-d embedding."""

    def __init__(self, num_classes: int, loss: str) -> None:
        """Build the network.

        Args:
            num_classes: Identities of the classifier.
            loss: ``"softmax"`` or ``"triplet"``.
        """
        super().__init__(loss)
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.feature = mlfn_blocks()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc_x = conv1x1_bn_relu(MLFN_STAGES[-1][1], EMBEDDING_DIM)
        self.fc_s = conv1x1_bn_relu(GROUPS * len(self.feature), EMBEDDING_DIM)
        self.classifier = classifier_layer(EMBEDDING_DIM, num_classes)
        init_reid_weights(self)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Mean of the projected pooled features and the projected factor selections."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(images)), inplace=True))
        selections = []
        for block in self.feature:
            x, selection = block(x)
            selections.append(selection)
        pooled = self.fc_x(self.global_avgpool(x))
        selected = self.fc_s(torch.cat(selections, dim=1))
        return ((pooled + selected) * 0.5).flatten(1)


@register("mlfn")
def mlfn(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """MLFN (1024-d embedding), randomly initialised.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("mlfn", kwargs)
    return MLFN(num_classes, loss)
