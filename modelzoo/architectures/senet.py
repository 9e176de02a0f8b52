"""SE-ResNet-50 as torchreid builds ``se_resnet50_fc512``.

Reference: Hu et al., Squeeze-and-Excitation Networks, CVPR 2018.
torchreid's SE-ResNet comes from the Caffe port (Cadene's pretrainedmodels):
the stride sits on the first 1x1 convolution of a bottleneck, not on the 3x3
as in torchvision, and the stem (``layer0``) pools with ``ceil_mode=True``.
``layer4`` runs at stride 1 and a 512-d ``fc`` embedding follows the pooling.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from modelzoo.architectures._heads import PooledReIDModel, check_builder_kwargs
from modelzoo.architectures._registry import register
from modelzoo.architectures.resnet import EXPANSION, resnet_stages

SE_REDUCTION = 16


class SEResNetBottleneck(nn.Module):
    """Bottleneck (stride on ``conv1``) whose residual branch is rescaled by ``se_module``."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        """Build the block.

        Args:
            inplanes: Input channels.
            planes: Bottleneck width; the block outputs ``planes * 4`` channels.
            stride: Stride of ``conv1``.
            downsample: Shortcut projection, or None for the identity.
        """
        super().__init__()
        outplanes = planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, outplanes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.relu = nn.ReLU(inplace=True)
        self.se_module = SqueezeExcitation(outplanes, outplanes // SE_REDUCTION)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(se(branch(x)) + shortcut(x))``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se_module(out) + shortcut)


def se_resnet50_stages(last_stride: int) -> OrderedDict[str, nn.Module]:
    """SE-ResNet-50 backbone: ``layer0`` (7x7 stem) then ``layer1`` .. ``layer4``.

    Args:
        last_stride: Stride of ``layer4``.

    Returns:
        The backbone modules by attribute name, in the order they run.
    """
    stem = OrderedDict(
        conv1=nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
        bn1=nn.BatchNorm2d(64),
        relu1=nn.ReLU(inplace=True),
        pool=nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
    )
    stages: OrderedDict[str, nn.Module] = OrderedDict(layer0=nn.Sequential(stem))
    stages.update(resnet_stages(SEResNetBottleneck, last_stride))
    return stages


@register("se_resnet50_fc512")
def se_resnet50_fc512(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """SE-ResNet-50 with ``layer4`` at stride 1 and a 512-d ``fc`` embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("se_resnet50_fc512", kwargs)
    return PooledReIDModel(se_resnet50_stages(last_stride=1), 512 * EXPANSION, num_classes, loss, fc_dims=(512,))
