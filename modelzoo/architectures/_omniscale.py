"""Building blocks shared by OSNet (``osnet.py``) and OSNet-AIN (``osnet_ain.py``).

Both families use the same omni-scale residual block and the same network
skeleton; they differ only in how the block's streams are named in the
checkpoints, in where instance normalisation sits, and in how the stages are
laid out.  Those differences live in the family modules.

Reference: Zhou et al., Omni-Scale Feature Learning for Person
Re-Identification (ICCV 2019) and Learning Generalisable Omni-Scale
Representations for Person Re-Identification (TPAMI 2021).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import SqueezeExcitation

from modelzoo.architectures._conv_units import ConvNormReLU, PointwiseProjection
from modelzoo.architectures._heads import PooledReIDModel

# Channels of (stem, stage 2, stage 3, stage 4) for each width multiplier.
OSNET_WIDTHS: dict[str, tuple[int, int, int, int]] = {
    "x1_0": (64, 256, 384, 512),
    "x0_75": (48, 192, 288, 384),
    "x0_5": (32, 128, 192, 256),
    "x0_25": (16, 64, 96, 128),
}
EMBEDDING_DIM = 512
BOTTLENECK_REDUCTION = 4
GATE_REDUCTION = 16
NUM_STREAMS = 4  # stream t stacks t lite 3x3 units: receptive fields 3, 5, 7, 9


class OmniScaleBlock(nn.Module):
    """Residual bottleneck whose middle runs streams of growing receptive field.

    The streams' outputs are fused by one channel gate shared by all streams
    (a squeeze-and-excitation unit), so the block weighs scales per channel.
    Subclasses create the streams under the names their checkpoints use.
    """

    def __init__(self, in_channels: int, out_channels: int, *, expand_batch_norm: bool = True) -> None:
        """Build the block.

        Args:
            in_channels: Input channels.
            out_channels: Output channels; the streams use a quarter of them.
            expand_batch_norm: Batch-normalise the 1x1 expansion (OSNet-AIN's
                instance-normalised block omits it).
        """
        super().__init__()
        mid_channels = out_channels // BOTTLENECK_REDUCTION
        self.conv1 = ConvNormReLU(in_channels, mid_channels, 1)
        self._build_streams(mid_channels)
        self.gate = SqueezeExcitation(mid_channels, mid_channels // GATE_REDUCTION)
        self.conv3 = PointwiseProjection(mid_channels, out_channels, batch_norm=expand_batch_norm)
        self.downsample = (
            PointwiseProjection(in_channels, out_channels) if in_channels != out_channels else None
        )

    def _build_streams(self, channels: int) -> None:
        """Create the streams as attributes (called between ``conv1`` and ``gate``)."""
        raise NotImplementedError

    def streams(self) -> Iterable[nn.Module]:
        """The streams, shallowest first."""
        raise NotImplementedError

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """Reduce, run every stream, gate and sum them, expand."""
        reduced = self.conv1(x)
        fused = sum(self.gate(stream(reduced)) for stream in self.streams())
        return self.conv3(fused)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The identity, projected when the channel count changes."""
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual plus shortcut, then ReLU."""
        return F.relu(self.residual(x) + self.shortcut(x))


def spatial_reduction(channels: int) -> nn.Sequential:
    """Transition between stages: 1x1 conv unit, then halve height and width."""
    return nn.Sequential(ConvNormReLU(channels, channels, 1), nn.AvgPool2d(2, stride=2))


class OSNet(PooledReIDModel):
    """Omni-scale network: 7x7 stem, family-specific stages, 1x1 conv, pooled 512-d embedding.

    Eval mode returns the 512-d embedding; train mode returns the logits
    (and the embedding, for triplet loss).
    """

    def __init__(
        self,
        stages: Mapping[str, nn.Module],
        channels: Sequence[int],
        num_classes: int,
        loss: str,
        *,
        stem_instance_norm: bool = False,
    ) -> None:
        """Build the network.

        Args:
            stages: Modules run between the stem and ``conv5``, in order, under
                their checkpoint names (e.g. ``conv2``, ``pool2``).
            channels: Channels of the stem and of the three stages (see :data:`OSNET_WIDTHS`).
            num_classes: Identities of the classifier.
            loss: ``"softmax"`` or ``"triplet"``.
            stem_instance_norm: Instance-normalise the 7x7 stem (IBN and AIN variants).
        """
        backbone = {
            "conv1": ConvNormReLU(3, channels[0], 7, stride=2, padding=3, instance_norm=stem_instance_norm),
            "maxpool": nn.MaxPool2d(3, stride=2, padding=1),
            **stages,
            "conv5": ConvNormReLU(channels[-1], channels[-1], 1),
        }
        super().__init__(backbone, channels[-1], num_classes, loss, fc_dims=(EMBEDDING_DIM,))
