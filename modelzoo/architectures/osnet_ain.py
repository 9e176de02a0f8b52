"""OSNet-AIN builders (OSNet with instance normalisation found by architecture search).

The stem is instance-normalised, and some blocks instance-normalise their
residual branch before adding the shortcut (``OSBlockINin``).  Layer names
follow torchreid's checkpoints: a block's streams form one list ``conv2``,
and the spatial reductions are separate stages ``pool2`` and ``pool3``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from modelzoo.architectures._conv_units import light_conv_stack
from modelzoo.architectures._heads import check_builder_kwargs
from modelzoo.architectures._omniscale import (
    NUM_STREAMS,
    OSNET_WIDTHS,
    OmniScaleBlock,
    OSNet,
    spatial_reduction,
)
from modelzoo.architectures._registry import register


class LightConvStream(nn.Module):
    """A stream of ``depth`` lite 3x3 units (kept as a module for its ``layers`` key)."""

    def __init__(self, channels: int, depth: int) -> None:
        """Build the stream.

        Args:
            channels: Channels of every unit.
            depth: Number of units.
        """
        super().__init__()
        self.layers = light_conv_stack(channels, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the units in turn."""
        return self.layers(x)


class OSBlockAIN(OmniScaleBlock):
    """OSNet-AIN's plain block: streams held in the list ``conv2``."""

    def _build_streams(self, channels: int) -> None:
        self.conv2 = nn.ModuleList(LightConvStream(channels, depth) for depth in range(1, NUM_STREAMS + 1))

    def streams(self) -> Iterable[nn.Module]:
        """The streams, shallowest first."""
        return self.conv2


class OSBlockINin(OSBlockAIN):
    """Block that instance-normalises its residual branch (in place of the expansion's batch norm)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        """Build the block.

        Args:
            in_channels: Input channels.
            out_channels: Output channels.
        """
        super().__init__(in_channels, out_channels, expand_batch_norm=False)
        # "IN" is the attribute name, hence the key, in torchreid's checkpoints.
        self.IN = nn.InstanceNorm2d(out_channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Instance-normalised residual plus shortcut, then ReLU."""
        return F.relu(self.IN(self.residual(x)) + self.shortcut(x))


def _ain_stages(channels: tuple[int, int, int, int]) -> dict[str, nn.Module]:
    """The searched block layout of OSNet-AIN, with the reductions as their own stages."""
    stem, low, mid, high = channels
    return {
        "conv2": nn.Sequential(OSBlockINin(stem, low), OSBlockINin(low, low)),
        "pool2": spatial_reduction(low),
        "conv3": nn.Sequential(OSBlockAIN(low, mid), OSBlockINin(mid, mid)),
        "pool3": spatial_reduction(mid),
        "conv4": nn.Sequential(OSBlockINin(mid, high), OSBlockAIN(high, high)),
    }


def _build_osnet_ain(name: str, num_classes: int, loss: str, options: Mapping[str, Any], width: str) -> OSNet:
    """Assemble an OSNet-AIN of the given width (extra builder arguments are ignored)."""
    check_builder_kwargs(name, options)
    channels = OSNET_WIDTHS[width]
    return OSNet(_ain_stages(channels), channels, num_classes, loss, stem_instance_norm=True)


@register("osnet_ain_x1_0")
def osnet_ain_x1_0(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet-AIN at full width (512-d embedding), randomly initialised.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    return _build_osnet_ain("osnet_ain_x1_0", num_classes, loss, kwargs, "x1_0")


@register("osnet_ain_x0_75")
def osnet_ain_x0_75(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet-AIN at width x0.75; arguments as :func:`osnet_ain_x1_0`."""
    return _build_osnet_ain("osnet_ain_x0_75", num_classes, loss, kwargs, "x0_75")


@register("osnet_ain_x0_5")
def osnet_ain_x0_5(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet-AIN at width x0.5; arguments as :func:`osnet_ain_x1_0`."""
    return _build_osnet_ain("osnet_ain_x0_5", num_classes, loss, kwargs, "x0_5")


@register("osnet_ain_x0_25")
def osnet_ain_x0_25(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """OSNet-AIN at width x0.25; arguments as :func:`osnet_ain_x1_0`."""
    return _build_osnet_ain("osnet_ain_x0_25", num_classes, loss, kwargs, "x0_25")
