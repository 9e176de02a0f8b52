"""DenseNet-121 as torchreid builds ``densenet121_fc512``.

Reference: Huang et al., Densely Connected Convolutional Networks, CVPR 2017.
The ``features`` trunk is torchvision's (same keys and maths as torchreid's);
as in torchvision, a ReLU follows ``features.norm5`` before pooling, then a
512-d ``fc`` embedding.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models import DenseNet

from modelzoo.architectures._heads import PooledReIDModel, check_builder_kwargs
from modelzoo.architectures._registry import register


def densenet121_stages() -> OrderedDict[str, nn.Module]:
    """DenseNet-121's ``features`` (torchvision's) and the ReLU that closes it.

    Returns:
        The backbone modules by attribute name, in the order they run.
    """
    trunk = DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64).features
    return OrderedDict(features=trunk, relu=nn.ReLU(inplace=True))


@register("densenet121_fc512")
def densenet121_fc512(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """DenseNet-121 with a 512-d ``fc`` embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("densenet121_fc512", kwargs)
    return PooledReIDModel(densenet121_stages(), 1024, num_classes, loss, fc_dims=(512,))
