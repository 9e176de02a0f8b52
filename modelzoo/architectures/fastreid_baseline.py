"""fast-reid's ``Baseline`` meta-architecture (BoT, AGW, SBS): ``backbone`` + ``heads``.

The input is already normalised (ToTensor + ImageNet mean/std, like every
model of the hub).  fast-reid normalises inside the model instead, with
``pixel_mean`` / ``pixel_std`` buffers on 0..255 input; since
``(x / 255 - m) / s == (x - 255 m) / (255 s)`` the two agree, and those
buffers are not registered here (``modelzoo.formats.fastreid`` checks and
drops them from the files).
"""

from __future__ import annotations

import torch
from torch import nn

from modelzoo.architectures._heads import ReIDOutput, check_loss
from modelzoo.architectures.fastreid_heads import EmbeddingHead

TRIPLET_FEATURES = ("pooled", "neck")


def reid_output(
    training: bool, loss: str, embedding: torch.Tensor, logits, triplet_feature: torch.Tensor
) -> ReIDOutput | tuple:
    """The hub's output contract, shared by the fast-reid models.

    Args:
        training: Whether the model is in train mode.
        loss: ``"softmax"`` or ``"triplet"``.
        embedding: The eval-time feature.
        logits: The identity logits (a tensor, or MGN's tuple of 8), or None
            when the model has no classifier.
        triplet_feature: The feature fast-reid's triplet loss used.

    Returns:
        The embedding in eval mode or without a classifier; else the logits
        (softmax) or ``(logits, triplet_feature)`` (triplet).
    """
    if not training or logits is None:
        return embedding
    return logits if loss == "softmax" else (logits, triplet_feature)


class FastReIDBaseline(nn.Module):
    """Backbone feature map -> :class:`EmbeddingHead`.

    Eval mode returns the neck feature (post-BN), fast-reid's test-time
    output.  Train mode returns the identity logits (for circle-softmax heads
    ``scale * cos(feature, class weight)``, without the margins, which need the
    targets), or ``(logits, feature)`` for ``loss="triplet"`` where the feature
    is the one fast-reid's triplet loss used (``NECK_FEAT``: the pooled
    feature for BoT and AGW, the neck feature for SBS).  Without a classifier
    (``num_classes=0``) both modes return the embedding.
    """

    def __init__(self, backbone: nn.Module, heads: EmbeddingHead, loss: str, triplet_feature: str) -> None:
        """Args:
        backbone: Maps images to a feature map.
        heads: The embedding head (fast-reid's attribute name ``heads``).
        loss: ``"softmax"`` or ``"triplet"``.
        triplet_feature: ``"pooled"`` (``NECK_FEAT before``) or ``"neck"`` (``after``).
        """
        super().__init__()
        if triplet_feature not in TRIPLET_FEATURES:
            raise ValueError(f"triplet_feature must be one of {TRIPLET_FEATURES}, not {triplet_feature!r}")
        self.loss = check_loss(loss)
        self.triplet_feature = triplet_feature
        self.backbone = backbone
        self.heads = heads
        self.feature_dim = heads.feature_dim

    def forward(self, images: torch.Tensor) -> ReIDOutput:
        """See the class docstring.

        Args:
            images: Normalised images, ``(batch, 3, height, width)``.
        """
        pooled, neck = self.heads(self.backbone(images))
        logits = self.heads.logits(neck) if self.training and self.heads.weight is not None else None
        return reid_output(self.training, self.loss, neck, logits, pooled if self.triplet_feature == "pooled" else neck)
