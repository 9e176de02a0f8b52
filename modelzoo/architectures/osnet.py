"""OSNet (omni-scale network) builders: widths x1.0, x0.75, x0.5, x0.25 and the IBN variant.

Layer names follow torchreid's checkpoints.  The IBN variant (after Pan et
al., IBN-Net, ECCV 2018) instance-normalises the stem and the output of each
block of the first stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from modelzoo.architectures._conv_units import LightConv3x3, light_conv_stack
from modelzoo.architectures._heads import check_builder_kwargs
from modelzoo.architectures._omniscale import OSNET_WIDTHS, OmniScaleBlock, OSNet, spatial_reduction
from modelzoo.architectures._registry import register

BLOCKS_PER_STAGE = 2


class OSBlock(OmniScaleBlock):
    """OSNet's block: streams ``conv2a``..``conv2d``, optional instance norm after the sum."""

    def __init__(self, in_channels: int, out_channels: int, *, instance_norm: bool = False) -> None:
        """Build the block.

        Args:
            in_channels: Input channels.
            out_channels: Output channels.
            instance_norm: Instance-normalise residual plus shortcut (IBN variant).
        """
        super().__init__(in_channels, out_channels)
        # "IN" is the attribute name, hence the key, in torchreid's checkpoints.
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else None

    def _build_streams(self, channels: int) -> None:
        self.conv2a = LightConv3x3(channels, channels)
        self.conv2b = light_conv_stack(channels, 2)
        self.conv2c = light_conv_stack(channels, 3)
        self.conv2d = light_conv_stack(channels, 4)

    def streams(self) -> Iterable[nn.Module]:
        """The four streams, shallowest first."""
        return (self.conv2a, self.conv2b, self.conv2c, self.conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual plus shortcut, instance-normalised in the IBN variant, then ReLU."""
        out = self.residual(x) + self.shortcut(x)
        if self.IN is not None:
            out = self.IN(out)
        return F.relu(out)


def _stage(
    in_channels: int, out_channels: int, *, reduce: bool, instance_norm: bool = False
) -> nn.Sequential:
    """Blocks of one stage, followed by the spatial reduction when ``reduce``."""
    blocks: list[nn.Module] = [OSBlock(in_channels, out_channels, instance_norm=instance_norm)]
    blocks += [
        OSBlock(out_channels, out_channels, instance_norm=instance_norm) for _ in range(BLOCKS_PER_STAGE - 1)
    ]
    if reduce:
        blocks.append(spatial_reduction(out_channels))
    return nn.Sequential(*blocks)


def _build_osnet(
    name: str, num_classes: int, loss: str, options: Mapping[str, Any], width: str, *, ibn: bool = False
) -> OSNet:
    """Assemble an OSNet of the given width (extra builder arguments are ignored)."""
    check_builder_kwargs(name, options)
    channels = OSNET_WIDTHS[width]
    stages = {
        "conv2": _stage(channels[0], channels[1], reduce=True, instance_norm=ibn),
        "conv3": _stage(channels[1], channels[2], reduce=True),
        "conv4": _stage(channels[2], channels[3], reduce=False),
    }
    return OSNet(stages, channels, num_classes, loss, stem_instance_norm=ibn)


@register("osnet_x1_0")
def osnet_x1_0(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet at full width (512-d embedding), randomly initialised.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    return _build_osnet("osnet_x1_0", num_classes, loss, kwargs, "x1_0")


@register("osnet_x0_75")
def osnet_x0_75(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet at width x0.75; arguments as :func:`osnet_x1_0`."""
    return _build_osnet("osnet_x0_75", num_classes, loss, kwargs, "x0_75")


@register("osnet_x0_5")
def osnet_x0_5(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet at width x0.5; arguments as :func:`osnet_x1_0`."""
    return _build_osnet("osnet_x0_5", num_classes, loss, kwargs, "x0_5")


@register("osnet_x0_25")
def osnet_x0_25(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet at width x0.25; arguments as :func:`osnet_x1_0`."""
    return _build_osnet("osnet_x0_25", num_classes, loss, kwargs, "x0_25")


@register("osnet_ibn_x1_0")
def osnet_ibn_x1_0(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet at full width with IBN (instance norm in the stem and first stage).

    Arguments as :func:`osnet_x1_0`.
    """
    return _build_osnet("osnet_ibn_x1_0", num_classes, loss, kwargs, "x1_0", ibn=True)
