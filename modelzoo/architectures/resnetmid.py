"""ResNet-50 with mid-level feature fusion, as torchreid builds ``resnet50mid``.

Reference: Yu et al., The Devil is in the Middle: Exploiting Mid-level
Representations for Cross-Domain Instance Matching, arXiv:1711.08106.
The pooled outputs of the first two blocks of ``layer4`` are fused by
``fc_fusion`` (4096 -> 1024) and concatenated with the pooled output of the
last block: a 3072-d embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from modelzoo.architectures._heads import ReIDModel, check_builder_kwargs, classifier_layer, fc_layers, init_reid_weights
from modelzoo.architectures._registry import register
from modelzoo.architectures.resnet import EXPANSION, resnet50_stages

FUSION_DIM = 1024


class ResNetMid(ReIDModel):
    """ResNet-50 (``layer4`` at stride 2) whose embedding also uses ``layer4``'s mid-level blocks."""

    def __init__(self, num_classes: int, loss: str) -> None:
        """Build the backbone, ``fc_fusion`` and ``classifier`` in torchreid's order.

        Args:
            num_classes: Identities the classifier predicts.
            loss: ``"softmax"`` or ``"triplet"``.
        """
        super().__init__(loss)
        stages = resnet50_stages(last_stride=2)
        for name, stage in stages.items():
            self.add_module(name, stage)
        self.stage_names = tuple(stages)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        block_dim = 512 * EXPANSION
        self.fc_fusion = fc_layers(2 * block_dim, (FUSION_DIM,))
        self.feature_dim = FUSION_DIM + block_dim
        self.classifier = classifier_layer(self.feature_dim, num_classes)
        init_reid_weights(self)

    def layer4_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The feature map after each block of ``layer4``."""
        x = images
        for name in self.stage_names[:-1]:
            x = self.get_submodule(name)(x)
        outputs = []
        for block in self.get_submodule(self.stage_names[-1]).children():
            x = block(x)
            outputs.append(x)
        return outputs

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``[fc_fusion(pool(block1), pool(block2)), pool(block3)]`` of ``layer4``."""
        *mid, last = [self.global_avgpool(x).flatten(1) for x in self.layer4_outputs(images)]
        fused = self.fc_fusion(torch.cat(mid, dim=1))
        return torch.cat([fused, last], dim=1)


@register("resnet50mid")
def resnet50mid(num_classes: int, loss: str = "softmax", **kwargs) -> nn.Module:
    """ResNet-50 + mid-level feature fusion, with a 3072-d embedding.

    A builder: arguments, errors and result as described in
    :mod:`modelzoo.architectures`.
    """
    check_builder_kwargs("resnet50mid", kwargs)
    return ResNetMid(num_classes, loss)
