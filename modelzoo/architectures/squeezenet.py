"""SqueezeNet 1.0 as torchreid builds ``squeezenet1_0_fc512``.

Reference: Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size, arXiv:1602.07360.
The ``features`` trunk (Fire modules) is torchvision's, with the same keys and
maths as torchreid's; a 512-d ``fc`` embedding follows the pooling.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models import SqueezeNet

from modelzoo.architectures._heads import PooledReIDModel, check_builder_kwargs
from modelzoo.architectures._registry import register


def squeezenet1_0_stages() -> OrderedDict[str, nn.Module]:
    """SqueezeNet 1.0's ``features`` (torchvision's), ending with 512 channels.

    Returns:
        The backbone modules by attribute name, in the order they run.
    """
    return OrderedDict(features=SqueezeNet(version="1_0").features)


@register("squeezenet1_0_fc512")
def squeezenet1_0_fc512(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """SqueezeNet 1.0 with a 512-d ``fc`` embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("squeezenet1_0_fc512", kwargs)
    return PooledReIDModel(squeezenet1_0_stages(), 512, num_classes, loss, fc_dims=(512,))
