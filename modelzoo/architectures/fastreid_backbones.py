"""The backbones of fast-reid's released networks: ResNet-50/101 (IBN-a, SE, non-local) and ResNeSt-50.

Layer names, shapes and order are fast-reid's, so its files load strictly
(``backbone.conv1.weight``, ``backbone.layer3.5.bn1.IN.weight``,
``backbone.NL_3.0.theta.bias``, ...).  Where fast-reid's code changed between
the era that trained the released files (v0.1.1, 2020) and fastreid 1.4.0,
the difference is a constructor argument (the facts, with the commit that
made each change, are in ``modelzoo/architectures/fastreid.py``).

Both backbones return the ``layer4`` feature map; ``last_stride=1`` (every
released config) keeps ``layer4`` at the resolution of ``layer3``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import cast

import torch
from torch import nn

from modelzoo.architectures._heads import init_reid_weights
from modelzoo.architectures.resnet import EXPANSION, residual_layer

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")
# Bottlenecks per stage, and the non-local blocks fast-reid inserts after the
# last blocks of each stage (WITH_NL): none in layer1 and layer4.
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
NON_LOCAL_BLOCKS = {50: (0, 2, 3, 0), 101: (0, 2, 9, 0)}


class InstanceBatchNorm(nn.Module):
    """IBN-a: InstanceNorm (affine) on the first ``channels // 2`` channels, BatchNorm on the rest.

    Keys ``IN.weight``, ``IN.bias`` and ``BN.*``; the instance norm keeps no running statistics.
    """

    def __init__(self, channels: int) -> None:
        """Args:
        channels: Channels of the input.
        """
        super().__init__()
        self.instance_channels = channels // 2  # fast-reid calls it ``half``, which would hide Module.half()
        self.IN = nn.InstanceNorm2d(self.instance_channels, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.instance_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each half of the channels with its own norm."""
        first, rest = torch.split(x, [self.instance_channels, x.shape[1] - self.instance_channels], dim=1)
        return torch.cat((self.IN(first.contiguous()), self.BN(rest.contiguous())), dim=1)


class SqueezeExcitation(nn.Module):
    """Channel gating: global average, bias-free ``fc`` bottleneck (1/16), sigmoid (keys ``fc.0``, ``fc.2``)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        """Args:
        channels: Channels of the input.
        reduction: Width of the bottleneck, as a divisor of ``channels``.
        """
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel by its gate."""
        gate = self.fc(self.avg_pool(x).flatten(1))
        return x * gate[:, :, None, None]


class ResidualBottleneck(nn.Module):
    """fast-reid's ResNet bottleneck: 1x1, 3x3 (carries the stride), 1x1, optional SE, shortcut."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        ibn: bool = False,
        se: bool = False,
    ) -> None:
        """Args:
        inplanes: Channels entering the block.
        planes: Width of the block; it outputs ``planes * 4`` channels.
        stride: Stride of the 3x3 convolution.
        downsample: Shortcut projection, or None for the identity.
        ibn: Use IBN-a as the first norm.
        se: Gate the residual branch with squeeze-excitation.
        """
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = InstanceBatchNorm(planes) if ibn else nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcitation(planes * EXPANSION) if se else nn.Identity()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus shortcut, then ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def bottleneck_stage(
    inplanes: int, planes: int, blocks: int, stride: int, *, ibn: bool = False, se: bool = False
) -> nn.Sequential:
    """A ResNet stage of :class:`ResidualBottleneck` blocks (see :func:`modelzoo.architectures.resnet.residual_layer`).

    Args:
        inplanes: Channels entering the stage.
        planes: Width of its blocks (the stage outputs ``planes * 4``).
        blocks: Number of blocks.
        stride: Stride of the first block.
        ibn: IBN-a in every block.
        se: Squeeze-excitation in every block.

    Returns:
        The stage; its first block projects the shortcut (``downsample.0`` conv, ``.1`` BN) when shapes change.
    """
    return residual_layer(partial(ResidualBottleneck, ibn=ibn, se=se), inplanes, planes, blocks, stride)


class NonLocalBlock(nn.Module):
    """fast-reid's non-local block (AGW): a 1-channel embedding, dot-product affinity divided by N, BN-ed residual.

    ``g``, ``theta`` and ``phi`` project the input to **one** channel (fast-reid's
    inner width is ``reduc_ratio // reduc_ratio``); over the N positions,
    ``y = (theta^T phi / N) g``.  ``W`` (1x1 conv + BN, keys ``W.0``, ``W.1``)
    maps ``y`` back to the input width; its BN starts at zero, so a new block
    is the identity.

    With one channel the affinity is an outer product and ``y_i = theta_i *
    mean_j(phi_j g_j)`` would take O(N) instead of O(N^2); the N x N form is
    kept because it rounds exactly as fast-reid does (the O(N) form differs by
    ~1e-6 relative, which train-mode BatchNorm on small batches amplifies).
    """

    inner_channels = 1

    def __init__(self, channels: int) -> None:
        """Args:
        channels: Channels of the input (and output).
        """
        super().__init__()
        self.g = nn.Conv2d(channels, self.inner_channels, kernel_size=1)
        self.W = nn.Sequential(nn.Conv2d(self.inner_channels, channels, kernel_size=1), nn.BatchNorm2d(channels))
        self.theta = nn.Conv2d(channels, self.inner_channels, kernel_size=1)
        self.phi = nn.Conv2d(channels, self.inner_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The input plus its non-local response."""
        theta, phi, g = (projection(x).flatten(2) for projection in (self.theta, self.phi, self.g))  # (b, 1, N)
        affinity = torch.matmul(theta.transpose(1, 2), phi) / phi.shape[-1]  # (b, N, N)
        y = torch.matmul(affinity, g.transpose(1, 2)).transpose(1, 2)  # (b, 1, N)
        return self.W(y.reshape(x.shape[0], self.inner_channels, *x.shape[2:])) + x


class StagedBackbone(nn.Module):
    """Runs a stem, then ``layer1`` .. ``layer4``, inserting non-local blocks after the last blocks of a stage.

    The non-local blocks live in ``NL_1`` .. ``NL_4`` (fast-reid's names; only the
    non-empty lists are registered, so their keys are exactly fast-reid's).
    Subclasses define ``stem`` (the modules before ``layer1``).
    """

    stem: tuple[str, ...]
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def stage(self, index: int) -> nn.Sequential:
        """Stage ``index`` (0-based: ``layer1`` is 0)."""
        return cast(nn.Sequential, self.get_submodule(STAGE_NAMES[index]))

    def non_local_blocks(self, index: int) -> nn.ModuleList:
        """The non-local blocks of stage ``index`` (``NL_{index + 1}``)."""
        return cast(nn.ModuleList, self.get_submodule(f"NL_{index + 1}"))

    def add_non_local_blocks(self, counts: Sequence[int]) -> None:
        """Register ``counts[i]`` non-local blocks after the last blocks of stage ``i + 1``.

        Args:
            counts: Blocks per stage; fast-reid puts them after the last
                ``count`` blocks of the stage (R50: layer2 blocks 2-3, layer3 blocks 3-5).
        """
        self.non_local_after: dict[str, tuple[int, ...]] = {}
        for index, count in enumerate(counts):
            if count == 0:
                continue
            blocks = len(self.stage(index))
            channels = STAGE_WIDTHS[index] * EXPANSION
            self.add_module(f"NL_{index + 1}", nn.ModuleList(NonLocalBlock(channels) for _ in range(count)))
            self.non_local_after[STAGE_NAMES[index]] = tuple(range(blocks - count, blocks))

    def run_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map entering ``layer1``."""
        for name in self.stem:
            x = self.get_submodule(name)(x)
        return x

    def run_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``index`` (0-based), with its non-local blocks after the blocks fast-reid puts them."""
        after = getattr(self, "non_local_after", {}).get(STAGE_NAMES[index], ())
        for position, block in enumerate(self.stage(index)):
            x = block(x)
            if position in after:
                x = self.non_local_blocks(index)[after.index(position)](x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The ``layer4`` feature map of normalised images."""
        x = self.run_stem(images)
        for index in range(len(STAGE_NAMES)):
            x = self.run_stage(index, x)
        return x


class FastReIDResNet(StagedBackbone):
    """fast-reid's ResNet (``build_resnet_backbone``): 7x7 stem, 4 bottleneck stages, IBN-a / SE / non-local options."""

    stem = ("conv1", "bn1", "relu", "maxpool")

    def __init__(
        self,
        depth: int = 50,
        *,
        ibn: bool = False,
        se: bool = False,
        non_local: bool = False,
        last_stride: int = 1,
        padded_stem_pool: bool = True,
    ) -> None:
        """Build the layers.

        Args:
            depth: 50 or 101.
            ibn: IBN-a in the blocks of ``layer1``-``layer3`` (never ``layer4``).
            se: Squeeze-excitation in every block.
            non_local: fast-reid's non-local blocks (``WITH_NL``).
            last_stride: Stride of ``layer4``.
            padded_stem_pool: Stem max-pool 3/2 with ``padding=1`` (v0.1.1 era)
                rather than ``padding=0, ceil_mode=True`` (since fast-reid
                ``42cadae``, 2020-11-06): same output size, windows shifted by one pixel.

        Raises:
            ValueError: an unknown depth.
        """
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(STAGE_BLOCKS)}, not {depth!r}")
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        if padded_stem_pool:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        inplanes = 64
        for index, (planes, blocks) in enumerate(zip(STAGE_WIDTHS, STAGE_BLOCKS[depth], strict=True)):
            stride = (1, 2, 2, last_stride)[index]
            stage = bottleneck_stage(inplanes, planes, blocks, stride, ibn=ibn and index < 3, se=se)
            self.add_module(STAGE_NAMES[index], stage)
            inplanes = planes * EXPANSION
        if non_local:
            self.add_non_local_blocks(NON_LOCAL_BLOCKS[depth])
        init_backbone_weights(self)


# ---------------------------------------------------------------------------
# ResNeSt-50 (radix 2, cardinality 1, width 64, deep stem, avg_down, avd)


class SplitAttentionConv(nn.Module):
    """ResNeSt's split-attention 3x3 convolution (radix 2, cardinality 1).

    A grouped conv makes ``radix`` splits of ``channels`` each (``conv``, ``bn0``,
    ReLU); their sum, globally averaged, goes through ``fc1`` -> ``bn1`` -> ReLU
    -> ``fc2``; a softmax across the splits weighs them.
    """

    def __init__(self, channels: int, dilation: int = 1, radix: int = 2) -> None:
        """Args:
        channels: Channels in and out.
        dilation: Dilation (and padding) of the 3x3 convolution.
        radix: Number of splits.
        """
        super().__init__()
        inner = max(channels * radix // 4, 32)
        self.radix = radix
        self.conv = nn.Conv2d(
            channels, channels * radix, kernel_size=3, padding=dilation, dilation=dilation, groups=radix, bias=False
        )
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, inner, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(inner)
        self.fc2 = nn.Conv2d(inner, channels * radix, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The attention-weighted sum of the splits."""
        splits = self.relu(self.bn0(self.conv(x))).chunk(self.radix, dim=1)
        summary = nn.functional.adaptive_avg_pool2d(sum(splits), 1)
        attention = self.fc2(self.relu(self.bn1(self.fc1(summary))))
        weights = attention.view(x.shape[0], self.radix, -1).softmax(dim=1)
        return sum(weights[:, index, :, None, None] * split for index, split in enumerate(splits))


class ResNeStBottleneck(nn.Module):
    """ResNeSt bottleneck: 1x1, split-attention 3x3, optional 3x3 average pool (``avd``), 1x1, shortcut."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        avd: bool = False,
        dilation: int = 1,
    ) -> None:
        """Args:
        inplanes: Channels entering the block.
        planes: Width of the block; it outputs ``planes * 4`` channels.
        stride: Stride of the ``avd`` pool (the convolutions keep stride 1).
        downsample: Shortcut projection, or None for the identity.
        avd: Average-pool 3/``stride`` (padding 1) after the split-attention
            conv; ResNeSt does so in the first block of ``layer2``-``layer4``,
            even at stride 1.
        dilation: Dilation of the split-attention conv.
        """
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.avd_layer = nn.AvgPool2d(3, stride, padding=1) if avd else None
        self.conv2 = SplitAttentionConv(planes, dilation=dilation)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus shortcut, then ReLU."""
        out = self.conv2(self.relu(self.bn1(self.conv1(x))))
        if self.avd_layer is not None:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def resnest_stage(inplanes: int, planes: int, blocks: int, stride: int, *, avd: bool, dilation: int) -> nn.Sequential:
    """A ResNeSt stage; its first block's shortcut average-pools then projects (``avg_down``).

    Args:
        inplanes: Channels entering the stage.
        planes: Width of its blocks.
        blocks: Number of blocks.
        stride: Stride of the first block.
        avd: Whether the first block has the ``avd`` pool.
        dilation: Dilation of the blocks after the first (the first keeps 1).

    Returns:
        The stage (shortcut keys ``downsample.1`` conv, ``downsample.2`` BN).
    """
    outplanes = planes * EXPANSION
    downsample = nn.Sequential(
        nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(inplanes, outplanes, kernel_size=1, bias=False),
        nn.BatchNorm2d(outplanes),
    )
    layers = [ResNeStBottleneck(inplanes, planes, stride, downsample, avd=avd)]
    layers += [ResNeStBottleneck(outplanes, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNeSt50(StagedBackbone):
    """ResNeSt-50 as fast-reid builds it (``build_resnest_backbone``, depth 50, stem width 32)."""

    stem = ("conv1", "bn1", "relu", "maxpool")

    def __init__(self, *, last_stride: int = 1, layer4_dilation: int = 1, non_local: bool = False) -> None:
        """Build the layers.

        Args:
            last_stride: Stride of ``layer4``.
            layer4_dilation: Dilation of ``layer4`` blocks 1-2: 1 in the v0.1.1
                era, 2 in fastreid >= 1.0, which turns it on whenever ``LAST_STRIDE`` is 1.
            non_local: Non-local blocks as in the ResNet (``WITH_NL``); the
                v0.1.1-era ResNeSt honours it, fastreid >= 1.0 ignores it.
        """
        super().__init__()
        stem_width = 32
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, stem_width, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width * 2, kernel_size=3, padding=1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(stem_width * 2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = stem_width * 2
        for index, (planes, blocks) in enumerate(zip(STAGE_WIDTHS, STAGE_BLOCKS[50], strict=True)):
            stride = (1, 2, 2, last_stride)[index]
            dilation = layer4_dilation if index == 3 else 1
            stage = resnest_stage(inplanes, planes, blocks, stride, avd=index > 0, dilation=dilation)
            self.add_module(STAGE_NAMES[index], stage)
            inplanes = planes * EXPANSION
        if non_local:
            self.add_non_local_blocks(NON_LOCAL_BLOCKS[50])
        init_backbone_weights(self)


def init_backbone_weights(model: nn.Module) -> None:
    """A sane training start (loaded weights replace it): torchreid's init, then identity non-local blocks.

    Args:
        model: Module initialised in place.
    """
    init_reid_weights(model)
    for module in model.modules():
        if isinstance(module, NonLocalBlock):
            nn.init.zeros_(cast(nn.BatchNorm2d, module.W[1]).weight)  # fast-reid: a new block is the identity
