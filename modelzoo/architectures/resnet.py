"""ResNet-50 as torchreid builds it: ``resnet50`` and ``resnet50_fc512``.

Reference: He et al., Deep Residual Learning for Image Recognition, CVPR 2016.
The blocks are torchvision's (stride on the 3x3 convolution, as in torchreid);
``resnet50_fc512`` keeps ``layer4`` at stride 1, doubling the final feature map,
and adds a 512-d ``fc`` embedding.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn
from torchvision.models.resnet import Bottleneck

from modelzoo.architectures._heads import PooledReIDModel, check_builder_kwargs
from modelzoo.architectures._registry import register

RESNET50_BLOCKS = (3, 4, 6, 3)
EXPANSION = 4  # output channels of a bottleneck / its width
BlockFactory = Callable[..., nn.Module]  # (inplanes, planes, stride, downsample) -> block


def residual_layer(block: BlockFactory, inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One ResNet stage: a first block that may change shape, then ``blocks - 1`` identity-shaped ones.

    The shortcut of the first block is a strided 1x1 convolution + BN whenever
    the stride or the channel count changes (torchreid's ``downsample``).

    Args:
        block: Bottleneck factory called as ``block(inplanes, planes, stride, downsample)``.
        inplanes: Channels entering the stage.
        planes: Width of the bottlenecks; the stage outputs ``planes * 4`` channels.
        blocks: Number of bottlenecks.
        stride: Stride of the first block.

    Returns:
        The stage.
    """
    outplanes = planes * EXPANSION
    downsample = None
    if stride != 1 or inplanes != outplanes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(outplanes),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(outplanes, planes, 1, None) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def resnet_stages(block: BlockFactory, last_stride: int, stem_width: int = 64) -> OrderedDict[str, nn.Module]:
    """The stages of a ResNet-50 (``layer1`` .. ``layer4``), each keyed by torchreid's name.

    Args:
        block: Bottleneck factory, see :func:`residual_layer`.
        last_stride: Stride of ``layer4`` (2 as in ImageNet, 1 for a larger final map).
        stem_width: Channels the stem outputs.

    Returns:
        ``layer1`` .. ``layer4`` in order.
    """
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    inplanes = stem_width
    for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), RESNET50_BLOCKS)):
        stride = 1 if index == 0 else (last_stride if index == 3 else 2)
        stages[f"layer{index + 1}"] = residual_layer(block, inplanes, planes, blocks, stride)
        inplanes = planes * EXPANSION
    return stages


def resnet50_stages(last_stride: int) -> OrderedDict[str, nn.Module]:
    """torchvision-style ResNet-50 backbone: 7x7 stem (``conv1``, ``bn1``, ``relu``, ``maxpool``) then 4 stages.

    Args:
        last_stride: Stride of ``layer4``.

    Returns:
        The backbone modules by attribute name, in the order they run.
    """
    stages: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
        bn1=nn.BatchNorm2d(64),
        relu=nn.ReLU(inplace=True),
        maxpool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    stages.update(resnet_stages(Bottleneck, last_stride))
    return stages


@register("resnet50")
def resnet50(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """ResNet-50 with a 2048-d embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("resnet50", kwargs)
    return PooledReIDModel(resnet50_stages(last_stride=2), 512 * EXPANSION, num_classes, loss)


@register("resnet50_fc512")
def resnet50_fc512(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """ResNet-50 with ``layer4`` at stride 1 and a 512-d ``fc`` embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("resnet50_fc512", kwargs)
    return PooledReIDModel(resnet50_stages(last_stride=1), 512 * EXPANSION, num_classes, loss, fc_dims=(512,))
