"""HA-CNN (harmonious attention CNN) as torchreid builds it.

Reference: Li et al., Harmonious Attention Network for Person
Re-identification, CVPR 2018.  A global branch of three Inception stages,
each followed by soft attention (spatial x channel) and hard attention (the
centres of four horizontal stripes), and a local branch that crops the four
stripes from the global feature maps with a spatial transformer.  The
embedding is the L2-normalised global feature followed by the L2-normalised
local feature (1024-d).

Unlike torchreid's version, which builds the crop transforms on the CPU and
moves them with ``.cuda()``, every tensor made in ``forward`` is made on the
input's device, with its dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from modelzoo.architectures._conv_units import ConvNormReLU
from modelzoo.architectures._heads import check_builder_kwargs, check_loss, classifier_layer, fc_layers
from modelzoo.architectures._registry import register

INPUT_HW = (160, 64)  # the stripe crop sizes below are fixed for this input size
STEM_CHANNELS = 32
STAGE_CHANNELS = (128, 256, 384)
FEATURE_DIM = 512
NUM_REGIONS = 4
REGION_SIZES = ((24, 28), (12, 14), (6, 7))  # each stripe crop is resized to this before local stage 1, 2, 3
# A stripe spans the full width and a quarter of the height (affine scale of the crop) ...
REGION_SCALE = ((1.0, 0.0), (0.0, 0.25))
# ... and hard attention starts with the four stripes stacked top to bottom: (x, y) centres.
INITIAL_REGION_CENTRES = (0.0, -0.75, 0.0, -0.25, 0.0, 0.25, 0.0, 0.75)
CHANNEL_ATTENTION_REDUCTION = 16

Pair = tuple[torch.Tensor, torch.Tensor]
HACNNOutput = torch.Tensor | Pair | tuple[Pair, Pair]


def conv_unit(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
) -> ConvNormReLU:
    """HA-CNN's convolution unit: conv with bias, batch norm, ReLU."""
    return ConvNormReLU(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True)


class InceptionBlock(nn.Module):
    """Parallel streams (``stream1``, ``stream2``, ...) whose outputs are concatenated along channels."""

    def __init__(self, *streams: nn.Module) -> None:
        """Register the streams in order.

        Args:
            *streams: Modules that take the block's input.
        """
        super().__init__()
        for index, stream in enumerate(streams, start=1):
            self.add_module(f"stream{index}", stream)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate every stream's output."""
        return torch.cat([stream(x) for stream in self.children()], dim=1)


def inception_a(in_channels: int, out_channels: int) -> InceptionBlock:
    """Size-preserving Inception block: three 1x1-3x3 streams and an average-pool stream."""
    mid = out_channels // 4
    return InceptionBlock(
        *(nn.Sequential(conv_unit(in_channels, mid, 1), conv_unit(mid, mid, 3, padding=1)) for _ in range(3)),
        nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), conv_unit(in_channels, mid, 1)),
    )


def inception_b(in_channels: int, out_channels: int) -> InceptionBlock:
    """Inception block that halves height and width: two convolution streams and a max-pool stream."""
    mid = out_channels // 4
    return InceptionBlock(
        nn.Sequential(conv_unit(in_channels, mid, 1), conv_unit(mid, mid, 3, stride=2, padding=1)),
        nn.Sequential(
            conv_unit(in_channels, mid, 1),
            conv_unit(mid, mid, 3, padding=1),
            conv_unit(mid, mid, 3, stride=2, padding=1),
        ),
        nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), conv_unit(in_channels, mid * 2, 1)),
    )


def global_average(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling, kept as ``(batch, channels, 1, 1)``.

    An average pool whose kernel is the whole map, as torchreid computes it:
    ``mean`` rounds differently in the last bit, and in train mode batch norm
    over a batch of a few 1x1 maps magnifies that into visible differences.
    """
    return F.avg_pool2d(x, kernel_size=x.shape[2:])


def pooled(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling, flattened to ``(batch, channels)``."""
    return global_average(x).flatten(1)


class SpatialAttention(nn.Module):
    """One map per image: channel mean, strided 3x3 conv, 2x bilinear upsampling, 1x1 conv."""

    def __init__(self) -> None:
        """Build the two single-channel convolution units."""
        super().__init__()
        self.conv1 = conv_unit(1, 1, 3, stride=2, padding=1)
        self.conv2 = conv_unit(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial attention map, shaped ``(batch, 1, height, width)``."""
        x = self.conv1(x.mean(dim=1, keepdim=True))
        x = F.interpolate(x, size=(x.size(2) * 2, x.size(3) * 2), mode="bilinear", align_corners=True)
        return self.conv2(x)


class ChannelAttention(nn.Module):
    """One weight per channel: global average pooling, then a squeeze and an excitation conv."""

    def __init__(self, in_channels: int) -> None:
        """Build the squeeze and excitation units.

        Args:
            in_channels: Channels of the attended feature map.
        """
        super().__init__()
        squeezed = in_channels // CHANNEL_ATTENTION_REDUCTION
        self.conv1 = conv_unit(in_channels, squeezed, 1)
        self.conv2 = conv_unit(squeezed, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights, shaped ``(batch, channels, 1, 1)``."""
        return self.conv2(self.conv1(global_average(x)))


class SoftAttention(nn.Module):
    """Pixel-wise attention in (0, 1): spatial x channel attention, mixed by a 1x1 conv."""

    def __init__(self, in_channels: int) -> None:
        """Build the attention units.

        Args:
            in_channels: Channels of the attended feature map.
        """
        super().__init__()
        self.spatial_attn = SpatialAttention()
        self.channel_attn = ChannelAttention(in_channels)
        self.conv = conv_unit(in_channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention shaped like ``x``."""
        return torch.sigmoid(self.conv(self.spatial_attn(x) * self.channel_attn(x)))


class HardAttention(nn.Module):
    """Centres of the four stripes, in the normalised coordinates of the feature map."""

    def __init__(self, in_channels: int) -> None:
        """Build the regressor, starting from four evenly stacked stripes whatever the input.

        Args:
            in_channels: Channels of the attended feature map.
        """
        super().__init__()
        self.fc = nn.Linear(in_channels, NUM_REGIONS * 2)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor(INITIAL_REGION_CENTRES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Centres shaped ``(batch, regions, 2)``, each coordinate in (-1, 1)."""
        return torch.tanh(self.fc(pooled(x))).view(-1, NUM_REGIONS, 2)


class HarmoniousAttention(nn.Module):
    """Soft and hard attention computed from the same feature map."""

    def __init__(self, in_channels: int) -> None:
        """Build both attentions.

        Args:
            in_channels: Channels of the attended feature map.
        """
        super().__init__()
        self.soft_attn = SoftAttention(in_channels)
        self.hard_attn = HardAttention(in_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The soft attention map and the stripe centres."""
        return self.soft_attn(x), self.hard_attn(x)


def crop_region(features: torch.Tensor, centres: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Sample one stripe per image from ``features`` and resize it to ``size``.

    Args:
        features: Feature maps, shaped ``(batch, channels, height, width)``.
        centres: Stripe centres ``(x, y)`` in normalised coordinates, shaped ``(batch, 2)``.
        size: Output height and width.

    Returns:
        The stripes, shaped ``(batch, channels, *size)``.
    """
    # Built from ``features`` so that it lives on the input's device with its dtype.
    scale = features.new_tensor(REGION_SCALE).expand(features.size(0), 2, 2)
    theta = torch.cat([scale, centres.unsqueeze(2)], dim=2)
    grid = F.affine_grid(theta, list(features.shape), align_corners=False)
    stripes = F.grid_sample(features, grid, align_corners=False)
    return F.interpolate(stripes, size=size, mode="bilinear", align_corners=True)


def check_input_size(images: torch.Tensor) -> None:
    """Raise ValueError unless ``images`` is a batch of 160x64 images."""
    if images.dim() != 4 or tuple(images.shape[-2:]) != INPUT_HW:
        raise ValueError(
            f"HA-CNN takes images of height {INPUT_HW[0]} and width {INPUT_HW[1]}, "
            f"shaped (batch, 3, {INPUT_HW[0]}, {INPUT_HW[1]}); got {tuple(images.shape)}: "
            "resize the images first"
        )


class HACNN(nn.Module):
    """Harmonious attention CNN with a global and a local (four-stripe) branch.

    Eval mode returns ``[normalised global | normalised local]`` (1024-d).
    Train mode returns ``(global_logits, local_logits)``; with triplet loss,
    ``((global_logits, local_logits), (global_feature, local_feature))``.
    """

    def __init__(self, num_classes: int, loss: str) -> None:
        """Build the network (module order is torchreid's, so keys come in its order).

        Args:
            num_classes: Identities of both classifiers (0: no classifiers; the embedding in both modes).
            loss: ``"softmax"`` or ``"triplet"``.
        """
        super().__init__()
        self.loss = check_loss(loss)
        self.conv = conv_unit(3, STEM_CHANNELS, 3, stride=2, padding=1)
        in_channels = (STEM_CHANNELS, *STAGE_CHANNELS[:-1])
        for stage, (inputs, outputs) in enumerate(zip(in_channels, STAGE_CHANNELS, strict=True), start=1):
            self.add_module(
                f"inception{stage}",
                nn.Sequential(inception_a(inputs, outputs), inception_b(outputs, outputs)),
            )
            self.add_module(f"ha{stage}", HarmoniousAttention(outputs))
        self.fc_global = fc_layers(STAGE_CHANNELS[-1], (FEATURE_DIM,))
        self.classifier_global = classifier_layer(FEATURE_DIM, num_classes)
        for stage, (inputs, outputs) in enumerate(zip(in_channels, STAGE_CHANNELS, strict=True), start=1):
            self.add_module(f"local_conv{stage}", inception_b(inputs, outputs))
        self.fc_local = fc_layers(STAGE_CHANNELS[-1] * NUM_REGIONS, (FEATURE_DIM,))
        self.classifier_local = classifier_layer(FEATURE_DIM, num_classes)
        self.feature_dim = FEATURE_DIM * 2

    def _stage(self, stage: int) -> tuple[nn.Module, nn.Module, nn.Module]:
        """Global Inception stage, its attention, and the matching local stage (1-based)."""
        return (
            self.get_submodule(f"inception{stage}"),
            self.get_submodule(f"ha{stage}"),
            self.get_submodule(f"local_conv{stage}"),
        )

    def features(self, images: torch.Tensor) -> Pair:
        """The global and local features (before normalisation), each ``(batch, 512)``."""
        check_input_size(images)
        attended = self.conv(images)
        regions: list[torch.Tensor] = []
        for stage, size in enumerate(REGION_SIZES, start=1):
            inception, attention, local_conv = self._stage(stage)
            maps = inception(attended)
            soft, centres = attention(maps)
            regions = self._local_stage(local_conv, attended, centres, size, regions)
            attended = maps * soft
        local = torch.cat([pooled(stripe) for stripe in regions], dim=1)
        return self.fc_global(pooled(attended)), self.fc_local(local)

    @staticmethod
    def _local_stage(
        local_conv: nn.Module,
        attended: torch.Tensor,
        centres: torch.Tensor,
        size: tuple[int, int],
        previous: list[torch.Tensor],
    ) -> list[torch.Tensor]:
        """Run one local stage per stripe: crop, add the stripe's previous local features, convolve.

        Each stripe goes through ``local_conv`` on its own (as in torchreid), so
        batch norm sees one stripe's statistics at a time in train mode.
        """
        outputs = []
        for region in range(NUM_REGIONS):
            stripe = crop_region(attended, centres[:, region], size)
            if previous:
                stripe = stripe + previous[region]
            outputs.append(local_conv(stripe))
        return outputs

    def forward(self, images: torch.Tensor) -> HACNNOutput:
        """Embedding in eval mode; logits (and features, for triplet loss) in train mode.

        Args:
            images: Normalised images, shaped ``(batch, 3, 160, 64)``.

        Returns:
            See the class docstring.

        Raises:
            ValueError: The images are not 160x64.
        """
        global_feature, local_feature = self.features(images)
        if not self.training or self.classifier_global is None or self.classifier_local is None:
            return torch.cat([F.normalize(global_feature, dim=1), F.normalize(local_feature, dim=1)], dim=1)
        logits = (self.classifier_global(global_feature), self.classifier_local(local_feature))
        return logits if self.loss == "softmax" else (logits, (global_feature, local_feature))


@register("hacnn")
def hacnn(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """HA-CNN (1024-d embedding, 160x64 input; its global and local classifiers both predict ``num_classes``).

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("hacnn", kwargs)
    return HACNN(num_classes, loss)
