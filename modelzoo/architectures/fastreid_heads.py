"""fast-reid's embedding head: pooling, optional 1x1 embedding conv, BNNeck, identity classifier.

Keys are fastreid 1.4.0's ``EmbeddingHead``: ``pool_layer.p`` (learned GeM only),
``bottleneck.0.*`` (the neck BN, or the embedding conv when there is one, then
``bottleneck.1.*``) and ``weight`` (the classifier, ``(num_classes, dim)``, no bias).
The v0.1.1-era files name the neck BN ``bnneck`` and the classifier
``classifier.weight``; ``modelzoo.formats.fastreid`` renames them
(JDAI-CV/fast-reid#453, #486).

Eval mode returns the neck feature (post-BN), as fast-reid does at test time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POOL_KINDS = ("avg", "gem_fixed", "gem_learned")
GEM_P = 3.0  # fast-reid's GeM exponent: the fixed value, and the learned one's start
GEM_EPS = 1e-6


def generalized_mean(x: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    """Global generalized mean ``mean(clamp(x, 1e-6) ** p) ** (1 / p)`` over height and width, kept 4-D."""
    return F.adaptive_avg_pool2d(x.clamp(min=GEM_EPS).pow(p), 1).pow(1.0 / p)


class GeneralizedMeanPool(nn.Module):
    """GeM with a fixed exponent (a Python float, so no state-dict key); fastreid's ``GeneralizedMeanPooling``."""

    def __init__(self, p: float = GEM_P) -> None:
        """Args:
        p: The exponent.
        """
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, 1, 1)``."""
        return generalized_mean(x, self.p)


class LearnedGeneralizedMeanPool(nn.Module):
    """GeM whose exponent is a learned ``(1,)`` parameter ``p``; fastreid's ``GeneralizedMeanPoolingP``."""

    def __init__(self, p: float = GEM_P) -> None:
        """Args:
        p: The exponent's initial value.
        """
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, 1, 1)``."""
        return generalized_mean(x, self.p)


def global_pool(kind: str) -> nn.Module:
    """The global pooling layer named ``kind``.

    Args:
        kind: ``"avg"`` (global average), ``"gem_fixed"`` (GeM, p = 3) or
            ``"gem_learned"`` (GeM with a learned p, starting at 3).

    Returns:
        A module mapping ``(batch, channels, h, w)`` to ``(batch, channels, 1, 1)``.

    Raises:
        ValueError: an unknown kind.
    """
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "gem_fixed":
        return GeneralizedMeanPool()
    if kind == "gem_learned":
        return LearnedGeneralizedMeanPool()
    raise ValueError(f"unknown pool {kind!r}: use one of {', '.join(POOL_KINDS)}")


@dataclass(frozen=True)
class ClassifierSpec:
    """How the identity logits are computed from the neck feature.

    Attributes:
        kind: ``"linear"`` (``feature @ weight.T``, no bias) or ``"circle"``
            (fast-reid's ``CircleSoftmax``: ``scale * cos(feature, weight)``).
        scale: The circle head's scale ``s`` (64 in every released config).
        margin: The circle head's margin ``m`` (0.35); it only enters the
            training loss, which needs the targets, so the logits here leave it out.
    """

    kind: str = "linear"
    scale: float = 1.0
    margin: float = 0.0


LINEAR = ClassifierSpec()
CIRCLE = ClassifierSpec("circle", scale=64.0, margin=0.35)


def identity_logits(features: torch.Tensor, weight: torch.Tensor, classifier: ClassifierSpec) -> torch.Tensor:
    """Logits of ``features`` against the class weights.

    Linear heads: ``features @ weight.T``.  Circle heads: ``scale * cos``, the
    margin-free logits fastreid 1.4.0 returns as ``pred_class_logits`` (the
    margins of the circle loss depend on the targets).

    Args:
        features: ``(batch, dim)``.
        weight: ``(num_classes, dim)``.
        classifier: Which logits.

    Returns:
        ``(batch, num_classes)``.
    """
    if classifier.kind == "circle":
        return classifier.scale * F.linear(F.normalize(features), F.normalize(weight))
    return F.linear(features, weight)


def neck_norm(channels: int) -> nn.BatchNorm2d:
    """fast-reid's BNNeck: a BatchNorm whose bias is stored but never trained (``bias_freeze=True``)."""
    norm = nn.BatchNorm2d(channels)
    norm.bias.requires_grad_(False)
    return norm


def class_weight(num_classes: int, dim: int) -> nn.Parameter | None:
    """The classifier weight ``(num_classes, dim)`` (normal, std 0.01, as fastreid 1.4.0), or None for 0 classes."""
    if num_classes == 0:
        return None
    weight = nn.Parameter(torch.empty(num_classes, dim))
    nn.init.normal_(weight, std=0.01)
    return weight


def check_num_classes(num_classes: int) -> int:
    """``num_classes`` if it is a non-negative int (0: no classifier, timm's meaning).

    Raises:
        ValueError: a negative or non-integer count.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer >= 0 (0 for no classifier), not {num_classes!r}")
    return num_classes


class EmbeddingHead(nn.Module):
    """Pool -> optional 1x1 embedding conv -> BNNeck -> ``[..., 0, 0]``; a bias-free class weight."""

    weight: nn.Parameter | None

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pool: str,
        embedding_dim: int = 0,
        classifier: ClassifierSpec = LINEAR,
    ) -> None:
        """Build the head.

        Args:
            in_channels: Channels of the backbone's feature map.
            num_classes: Rows of the class weight; 0 for none (no ``weight`` key).
            pool: See :func:`global_pool`.
            embedding_dim: Width of a bias-free 1x1 conv before the neck BN; 0 for none.
            classifier: How the logits are computed.
        """
        super().__init__()
        self.pool_layer = global_pool(pool)
        dim = embedding_dim or in_channels
        neck: list[nn.Module] = []
        if embedding_dim:
            embedding = nn.Conv2d(in_channels, embedding_dim, kernel_size=1, bias=False)
            nn.init.kaiming_normal_(embedding.weight, mode="fan_out", nonlinearity="relu")
            neck.append(embedding)
        neck.append(neck_norm(dim))
        self.bottleneck = nn.Sequential(*neck)
        self.register_parameter("weight", class_weight(check_num_classes(num_classes), dim))
        self.classifier = classifier
        self.feature_dim = dim

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pooled, neck)`` features, each ``(batch, dim)``: before and after the neck (the embedding)."""
        pooled = self.pool_layer(feature_map)
        return pooled[..., 0, 0], self.bottleneck(pooled)[..., 0, 0]

    def logits(self, neck: torch.Tensor) -> torch.Tensor:
        """Identity logits of neck features (see :func:`identity_logits`); needs a classifier."""
        if self.weight is None:
            raise RuntimeError("this head has no classifier (num_classes=0)")
        return identity_logits(neck, self.weight, self.classifier)
