"""fast-reid's MGN (Multiple Granularity Network) on ResNet-50-IBN, in its two head layouts.

Trunk ``backbone`` = ``conv1, bn1, relu, maxpool, layer1, layer2, layer3[0]``
(keys ``backbone.0`` .. ``backbone.6``).  Three branches continue it: ``b1`` =
the rest of ``layer3`` + ``layer4``; ``b2`` and ``b3`` = another copy of the
rest of ``layer3`` + a 3-bottleneck stage without IBN at stride 1.  ``b2``'s
map is also cut into 2 horizontal stripes (``b21``, ``b22``) and ``b3``'s into
3 (``b31`` .. ``b33``).  Each of the 8 maps gives a 256-d neck feature; the
embedding is their concatenation in the order ``b1, b2, b3, b21, b22, b31,
b32, b33`` (2048-d).

The head of each branch, as the file's era built it:

* **v0.1.1 era** (the released files): ``bX_pool`` = one GeM with learned p
  **shared by all 8 branches** (so the file holds 8 names ``bX_pool.0.p`` of
  one tensor), 1x1 conv 2048->256, BN, **ReLU**; then ``bX_head`` = a second
  BN (``bnneck``) and the class weight.  fastreid 1.4.0 has no such layout;
  these keys keep the era's names (JDAI-CV/fast-reid#352, #508).
* **fastreid >= 1.0**: ``bX_head`` = :class:`EmbeddingHead` (its own learned
  GeM, conv 2048->256, BN; keys ``bX_head.pool_layer.p``,
  ``bX_head.bottleneck.{0,1}``).

Both have the class weight at ``bX_head.weight`` (the era's files call it
``bX_head.classifier.weight``; ``modelzoo.formats.fastreid`` renames it).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from modelzoo.architectures._heads import ReIDOutput, check_loss
from modelzoo.architectures.fastreid_backbones import FastReIDResNet, ResidualBottleneck, bottleneck_stage
from modelzoo.architectures.fastreid_baseline import reid_output
from modelzoo.architectures.fastreid_heads import (
    CIRCLE,
    EmbeddingHead,
    LearnedGeneralizedMeanPool,
    check_num_classes,
    class_weight,
    identity_logits,
    neck_norm,
)

BRANCH_DIM = 256
# Module registration order (fast-reid's, so state-dict keys come in its order) ...
BRANCH_ORDER = ("b1", "b2", "b21", "b22", "b3", "b31", "b32", "b33")
# ... and the order of the 8 features in the embedding (fast-reid's eval output).
EMBEDDING_ORDER = ("b1", "b2", "b3", "b21", "b22", "b31", "b32", "b33")
STRIPES = {"b2": ("b21", "b22"), "b3": ("b31", "b32", "b33")}


class EraBranchHead(nn.Module):
    """The v0.1.1-era branch head after ``bX_pool``: the second BN (``bnneck``) and the class weight."""

    weight: nn.Parameter | None

    def __init__(self, num_classes: int) -> None:
        """Args:
        num_classes: Rows of the class weight; 0 for none.
        """
        super().__init__()
        self.bnneck = neck_norm(BRANCH_DIM)
        self.register_parameter("weight", class_weight(num_classes, BRANCH_DIM))

    def forward(self, reduced: torch.Tensor) -> torch.Tensor:
        """``(batch, 256)`` neck feature of the ``(batch, 256, 1, 1)`` output of ``bX_pool``."""
        return self.bnneck(reduced)[..., 0, 0]


def era_pool_reduce(shared_pool: nn.Module) -> nn.Sequential:
    """``bX_pool``: the shared GeM, 1x1 conv 2048 -> 256 (no bias), BN, ReLU."""
    conv = nn.Conv2d(2048, BRANCH_DIM, kernel_size=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(shared_pool, conv, nn.BatchNorm2d(BRANCH_DIM), nn.ReLU(inplace=True))


def part_branch(layer3_tail: nn.Module) -> nn.Sequential:
    """``b2`` / ``b3``: the rest of ``layer3`` then a stride-1 stage of 3 bottlenecks without IBN."""
    return nn.Sequential(layer3_tail, bottleneck_stage(1024, 512, 3, stride=1))


def layer3_tail() -> nn.Sequential:
    """A copy of ``layer3[1:]`` of ResNet-50-IBN: 5 IBN bottlenecks at 1024 channels."""
    return nn.Sequential(*(ResidualBottleneck(1024, 256, ibn=True) for _ in range(5)))


class FastReIDMGN(nn.Module):
    """MGN; eval mode returns the 2048-d embedding (8 x 256, see the module docstring).

    Train mode returns the 8 branches' identity logits as a tuple in the
    embedding's order (circle-softmax: ``scale * cos``, without the margins),
    or ``(logits, embedding)`` for ``loss="triplet"``; without a classifier
    (``num_classes=0``) both modes return the embedding.
    """

    def __init__(self, num_classes: int, loss: str, *, era_heads: bool, padded_stem_pool: bool) -> None:
        """Build the network.

        Args:
            num_classes: Rows of each branch's class weight; 0 for none.
            loss: ``"softmax"`` or ``"triplet"``.
            era_heads: The v0.1.1-era heads (shared pool, ReLU, second BN)
                rather than fastreid 1.4.0's.
            padded_stem_pool: See :class:`FastReIDResNet`.
        """
        super().__init__()
        self.loss = check_loss(loss)
        self.era_heads = era_heads
        self.has_classifier = check_num_classes(num_classes) > 0
        resnet = FastReIDResNet(50, ibn=True, padded_stem_pool=padded_stem_pool)
        trunk = (resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1, resnet.layer2, resnet.layer3[0])
        self.backbone = nn.Sequential(*trunk)
        branches = {"b1": nn.Sequential(nn.Sequential(*resnet.layer3[1:]), resnet.layer4)}
        branches.update((name, part_branch(layer3_tail())) for name in STRIPES)
        heads = self.era_heads_of(num_classes) if era_heads else self.heads_of(num_classes)
        for name in BRANCH_ORDER:  # fast-reid's registration order: each branch, then its heads
            if name in branches:
                self.add_module(name, branches[name])
            for suffix, module in heads[name].items():
                self.add_module(f"{name}_{suffix}", module)
        self.feature_dim = BRANCH_DIM * len(EMBEDDING_ORDER)

    @staticmethod
    def era_heads_of(num_classes: int) -> dict[str, dict[str, nn.Module]]:
        """The v0.1.1-era ``bX_pool`` and ``bX_head`` of each branch, around one shared GeM."""
        shared_pool = LearnedGeneralizedMeanPool()
        return {
            name: {"pool": era_pool_reduce(shared_pool), "head": EraBranchHead(num_classes)} for name in BRANCH_ORDER
        }

    @staticmethod
    def heads_of(num_classes: int) -> dict[str, dict[str, nn.Module]]:
        """fastreid 1.4.0's ``bX_head`` of each branch."""
        return {
            name: {"head": EmbeddingHead(2048, num_classes, pool="gem_learned", embedding_dim=BRANCH_DIM,
                                         classifier=CIRCLE)}  # fmt: skip
            for name in BRANCH_ORDER
        }

    def branch_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The feature map of each of the 8 branches, by name."""
        features = self.backbone(images)
        maps = {name: self.get_submodule(name)(features) for name in ("b1", "b2", "b3")}
        for whole, stripes in STRIPES.items():
            parts = torch.chunk(maps[whole], len(stripes), dim=2)
            if len(parts) != len(stripes):  # torch.chunk cuts e.g. 4 rows into 2 parts of 2
                raise ValueError(
                    f"MGN: input height {images.shape[2]} gives {maps[whole].shape[2]}-row maps, which do not cut into "
                    f"{len(stripes)} stripes; use the released 384 (or any height of at least 80)"
                )
            maps.update(zip(stripes, parts, strict=True))
        return maps

    def branch_neck(self, name: str, feature_map: torch.Tensor) -> torch.Tensor:
        """Branch ``name``'s ``(batch, 256)`` neck feature."""
        head = self.get_submodule(f"{name}_head")
        if self.era_heads:
            return head(self.get_submodule(f"{name}_pool")(feature_map))
        return head(feature_map)[1]

    def forward(self, images: torch.Tensor) -> ReIDOutput | tuple:
        """See the class docstring.

        Args:
            images: Normalised images, ``(batch, 3, height, width)``.
        """
        maps = self.branch_maps(images)
        necks = {name: self.branch_neck(name, maps[name]) for name in EMBEDDING_ORDER}
        embedding = torch.cat([necks[name] for name in EMBEDDING_ORDER], dim=1)
        logits = None
        if self.training and self.has_classifier:
            weights = {name: cast(torch.Tensor, self.get_submodule(f"{name}_head").weight) for name in EMBEDDING_ORDER}
            logits = tuple(identity_logits(necks[name], weights[name], CIRCLE) for name in EMBEDDING_ORDER)
        return reid_output(self.training, self.loss, embedding, logits, embedding)
