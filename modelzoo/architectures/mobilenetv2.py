"""MobileNetV2 as torchreid builds it: ``mobilenetv2_1dot0`` and ``mobilenetv2_1dot4``.

Reference: Sandler et al., MobileNetV2: Inverted Residuals and Linear
Bottlenecks, CVPR 2018.  torchreid calls these ``mobilenetv2_x1_0`` and
``mobilenetv2_x1_4``.  Its layer names differ from torchvision's
(``conv1.conv``/``conv1.bn`` rather than ``conv.0.0``), and its channel counts
are ``int(c * width)`` with no rounding to multiples of 8, so the blocks are
written here.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from modelzoo.architectures._heads import PooledReIDModel, check_builder_kwargs
from modelzoo.architectures._registry import register

# (expansion factor, output channels at width 1, blocks, stride of the first block)
# for the stages conv2 .. conv8.
INVERTED_RESIDUAL_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class ConvBNReLU6(nn.Module):
    """Convolution without bias (``conv``), batch norm (``bn``), ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        """Build the block; padding keeps the size for odd kernels at stride 1.

        Args:
            in_channels: Input channels.
            out_channels: Output channels.
            kernel_size: Square kernel size.
            stride: Convolution stride.
            groups: Convolution groups (``in_channels`` for a depthwise convolution).
        """
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu6(bn(conv(x)))``."""
        return F.relu6(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise, linear 1x1 projection; residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int = 1) -> None:
        """Build the block (the expansion convolution exists even when ``expansion`` is 1).

        Args:
            in_channels: Input channels.
            out_channels: Output channels.
            expansion: Ratio of hidden to input channels.
            stride: Stride of the depthwise convolution.
        """
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv1 = ConvBNReLU6(in_channels, hidden, 1)
        self.dwconv2 = ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden)
        self.conv3 = nn.Sequential(nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The projected branch, plus ``x`` when the block keeps the shape."""
        out = self.conv3(self.dwconv2(self.conv1(x)))
        return x + out if self.use_residual else out


def last_conv_channels(width: float) -> int:
    """Channels of ``conv9`` (the embedding size): 1280, scaled only for widths above 1."""
    return int(1280 * width) if width > 1 else 1280


def mobilenetv2_stages(width: float) -> OrderedDict[str, nn.Module]:
    """MobileNetV2 backbone at ``width``: ``conv1`` .. ``conv9``.

    Args:
        width: Width multiplier (1.0 or 1.4 for the published models).

    Returns:
        The backbone modules by attribute name, in the order they run.
    """
    channels = int(32 * width)
    stages: OrderedDict[str, nn.Module] = OrderedDict(conv1=ConvBNReLU6(3, channels, 3, stride=2))
    for index, (expansion, base_channels, blocks, stride) in enumerate(INVERTED_RESIDUAL_STAGES):
        out_channels = int(base_channels * width)
        layers = [InvertedResidual(channels, out_channels, expansion, stride)]
        layers += [InvertedResidual(out_channels, out_channels, expansion) for _ in range(1, blocks)]
        stages[f"conv{index + 2}"] = nn.Sequential(*layers)
        channels = out_channels
    stages["conv9"] = ConvBNReLU6(channels, last_conv_channels(width), 1)
    return stages


def _mobilenetv2(width: float, num_classes: int, loss: str) -> nn.Module:
    """MobileNetV2 at ``width`` with no ``fc``: the embedding is ``conv9``'s pooled output."""
    return PooledReIDModel(mobilenetv2_stages(width), last_conv_channels(width), num_classes, loss)


@register("mobilenetv2_1dot0")
def mobilenetv2_1dot0(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """MobileNetV2 x1.0 (torchreid's ``mobilenetv2_x1_0``) with a 1280-d embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("mobilenetv2_1dot0", kwargs)
    return _mobilenetv2(1.0, num_classes, loss)


@register("mobilenetv2_1dot4")
def mobilenetv2_1dot4(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """MobileNetV2 x1.4 (torchreid's ``mobilenetv2_x1_4``) with a 1792-d embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("mobilenetv2_1dot4", kwargs)
    return _mobilenetv2(1.4, num_classes, loss)
