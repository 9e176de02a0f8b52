"""Small convolution units shared by several families.

Attribute names (``conv``, ``bn``, ``conv1``, ``conv2``) are those of
torchreid's checkpoints, so the units' state-dict keys match them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvNormReLU(nn.Module):
    """Convolution, then batch (or affine instance) normalisation, then ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        bias: bool = False,
        instance_norm: bool = False,
    ) -> None:
        """Build the unit.

        Args:
            in_channels: Input channels.
            out_channels: Output channels.
            kernel_size: Side of the square kernel.
            stride: Convolution stride.
            padding: Zero padding on each side.
            bias: Whether the convolution has a bias (HA-CNN's do, OSNet's do not).
            instance_norm: Normalise each image on its own (IBN/AIN style) instead of the batch.
        """
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias
        )
        self.bn = (
            nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else nn.BatchNorm2d(out_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply convolution, normalisation and ReLU."""
        return F.relu(self.bn(self.conv(x)), inplace=True)


class PointwiseProjection(nn.Module):
    """1x1 convolution with an optional batch norm and no activation (a linear projection)."""

    def __init__(self, in_channels: int, out_channels: int, *, batch_norm: bool = True) -> None:
        """Build the projection.

        Args:
            in_channels: Input channels.
            out_channels: Output channels.
            batch_norm: Follow the convolution with batch normalisation.
        """
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x`` to ``out_channels``."""
        x = self.conv(x)
        return x if self.bn is None else self.bn(x)


class LightConv3x3(nn.Module):
    """OSNet's lite 3x3 unit: linear 1x1 conv, depthwise 3x3 conv, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        """Build the unit.

        Args:
            in_channels: Input channels.
            out_channels: Output channels (also the depthwise groups).
        """
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the pointwise then depthwise convolution, normalisation and ReLU."""
        return F.relu(self.bn(self.conv2(self.conv1(x))), inplace=True)


def light_conv_stack(channels: int, depth: int) -> nn.Sequential:
    """``depth`` :class:`LightConv3x3` units in a row, all with ``channels`` channels."""
    return nn.Sequential(*(LightConv3x3(channels, channels) for _ in range(depth)))
