"""ShuffleNet (v1, 3 groups) as torchreid builds ``shufflenet``.

Reference: Zhang et al., ShuffleNet: An Extremely Efficient Convolutional
Neural Network for Mobile Devices, CVPR 2018.  The embedding is the pooled
960-d output of ``stage4``; there is no ``fc``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from modelzoo.architectures._heads import PooledReIDModel, check_builder_kwargs
from modelzoo.architectures._registry import register

GROUPS = 3
STEM_CHANNELS = 24
# (output channels, blocks) of stage2 .. stage4 for 3 groups.
STAGES = ((240, 4), (480, 8), (960, 4))


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups so the next grouped convolution mixes them.

    Written as a reshape rather than ``nn.ChannelShuffle``, which has no CUDA
    kernel (pytorch/pytorch#65325, #121208).
    """

    def __init__(self, groups: int) -> None:
        """Remember the number of groups.

        Args:
            groups: Number of channel groups; must divide the channel count.
        """
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, g*n, h, w) -> (b, n*g, h, w)``: channel ``i*n + j`` moves to ``j*g + i``."""
        batch, channels, height, width = x.shape
        grouped = x.reshape(batch, self.groups, channels // self.groups, height, width)
        return grouped.transpose(1, 2).reshape(batch, channels, height, width)


class ShuffleUnit(nn.Module):
    """Grouped 1x1, channel shuffle, depthwise 3x3, grouped 1x1; added to or concatenated with the shortcut.

    A unit at stride 2 concatenates its branch with the 3x3-average-pooled
    input, so the branch produces only ``out_channels - in_channels`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, group_first_conv: bool = True) -> None:
        """Build the unit.

        Args:
            in_channels: Input channels.
            out_channels: Output channels of the unit (shortcut included).
            stride: 1 (residual sum) or 2 (concatenation with the pooled input).
            group_first_conv: Whether ``conv1`` is grouped (not in the very first unit,
                whose 24 input channels are too few to split).
        """
        super().__init__()
        self.stride = stride
        hidden = out_channels // 4
        branch_channels = out_channels - in_channels if stride == 2 else out_channels
        self.conv1 = nn.Conv2d(in_channels, hidden, 1, groups=GROUPS if group_first_conv else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.shuffle1 = ChannelShuffle(GROUPS)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, branch_channels, 1, groups=GROUPS, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_channels)
        if stride == 2:
            self.shortcut = nn.AvgPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(x + branch)`` at stride 1, ``relu([pool(x), branch])`` at stride 2."""
        out = self.shuffle1(F.relu(self.bn1(self.conv1(x))))
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.stride == 2:
            return F.relu(torch.cat([self.shortcut(x), out], dim=1))
        return F.relu(x + out)


def shufflenet_stages() -> OrderedDict[str, nn.Module]:
    """ShuffleNet backbone: ``conv1`` (stem) then ``stage2`` .. ``stage4``.

    Returns:
        The backbone modules by attribute name, in the order they run.
    """
    stages: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(STEM_CHANNELS),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    )
    channels = STEM_CHANNELS
    for index, (out_channels, blocks) in enumerate(STAGES):
        units = [ShuffleUnit(channels, out_channels, 2, group_first_conv=index > 0)]
        units += [ShuffleUnit(out_channels, out_channels, 1) for _ in range(1, blocks)]
        stages[f"stage{index + 2}"] = nn.Sequential(*units)
        channels = out_channels
    return stages


@register("shufflenet")
def shufflenet(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """ShuffleNet with 3 groups and a 960-d embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("shufflenet", kwargs)
    return PooledReIDModel(shufflenet_stages(), STAGES[-1][0], num_classes, loss)
