"""The re-ID head shared by the CNN families: pooling, fc embedding, classifier.

torchreid's models share one contract, which checkpoints and callers rely on:

* eval mode returns the embedding (the input of the classifier);
* train mode returns the identity logits (``loss="softmax"``) or the pair
  ``(logits, embedding)`` (``loss="triplet"``).

:class:`ReIDModel` implements that contract once; :class:`PooledReIDModel`
adds the layout most families use (named backbone stages, global average
pooling, an optional ``fc`` embedding, ``classifier``), registering modules in
torchreid's order so that state-dict keys and their order match its checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

ACCEPTED_LOSSES = ("softmax", "triplet")

ReIDOutput = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def check_loss(loss: str) -> str:
    """Return ``loss`` if the head knows what to output for it.

    Args:
        loss: Training loss the model serves, as torchreid names it.

    Returns:
        ``loss`` unchanged.

    Raises:
        ValueError: ``loss`` is not one of :data:`ACCEPTED_LOSSES`.
    """
    if loss not in ACCEPTED_LOSSES:
        raise ValueError(f"unsupported loss {loss!r}: use one of {', '.join(ACCEPTED_LOSSES)}")
    return loss


# torchreid's factory passes these; ``use_gpu`` means nothing to a layer builder.
_TORCHREID_ONLY = ("use_gpu",)


def check_builder_kwargs(architecture: str, kwargs: Mapping[str, Any], accepted: Sequence[str] = ()) -> None:
    """Accept torchreid's ``use_gpu``, ``pretrained=False`` and the builder's declared options; refuse anything else.

    Our builders build layers only: weights come from checkpoints through
    ``modelzoo.get``.  ``pretrained=True`` is refused rather than ignored, so a
    caller expecting ImageNet weights never silently gets random ones
    (user-pain row 7).

    Args:
        architecture: Name of the architecture being built (for messages).
        kwargs: The extra keyword arguments the builder received.
        accepted: The options this builder declares (fast-reid's ``era``, ``pool``);
            the builder checks their values.

    Raises:
        TypeError: ``pretrained=True`` or an argument the builder does not know.
    """
    extra = dict(kwargs)
    if extra.pop("pretrained", False):
        raise TypeError(
            f"{architecture}: builders never load weights; use modelzoo.get('{architecture}', dataset) "
            "for trained weights, or modelzoo.build(...) without pretrained"
        )
    unknown = sorted(k for k in extra if k not in _TORCHREID_ONLY and k not in accepted)
    if unknown:
        options = f" (its options: {', '.join(accepted)})" if accepted else ""
        raise TypeError(f"{architecture}: unexpected builder argument(s) {', '.join(unknown)}{options}")


def fc_embedding(input_dim: int, dims: Sequence[int]) -> nn.Sequential | None:
    """torchreid's embedding MLP: ``Linear -> BatchNorm1d -> ReLU`` per entry of ``dims``.

    Args:
        input_dim: Size of the pooled backbone feature.
        dims: Output size of each layer (e.g. ``(512,)`` for the ``*_fc512`` models).

    Returns:
        The layers, or None when ``dims`` is empty (the model has no ``fc``).
    """
    return fc_layers(input_dim, dims) if dims else None


def fc_layers(input_dim: int, dims: Sequence[int]) -> nn.Sequential:
    """``Linear -> BatchNorm1d -> ReLU`` per entry of ``dims`` (at least one)."""
    layers: list[nn.Module] = []
    for dim in dims:
        layers += [nn.Linear(input_dim, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True)]
        input_dim = dim
    return nn.Sequential(*layers)


def classifier_layer(in_features: int, num_classes: int) -> nn.Linear | None:
    """The identity classifier, or None for ``num_classes=0`` (an embedding-only model, timm's meaning).

    Raises:
        ValueError: ``num_classes`` is not a whole number of at least 0.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a whole number >= 0 (0: no classifier), got {num_classes!r}")
    return nn.Linear(in_features, num_classes) if num_classes else None


def init_reid_weights(model: nn.Module) -> None:
    """torchreid's initialisation; irrelevant once a checkpoint is loaded, but sane for training.

    Args:
        model: Module whose convolutions, norms and linear layers are reset in place.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:  # fast-reid's squeeze-excitation layers have none
                nn.init.zeros_(module.bias)


class ReIDModel(nn.Module):
    """Base of every re-ID model: subclasses define ``classifier`` (None: no classifier) and :meth:`embed`."""

    classifier: nn.Module | None

    def __init__(self, loss: str) -> None:
        """Check ``loss`` now rather than at the first training step.

        Args:
            loss: ``"softmax"`` or ``"triplet"``.
        """
        super().__init__()
        self.loss = check_loss(loss)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The embedding of a batch of images, shaped ``(batch, feature_dim)``."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> ReIDOutput:
        """Embedding in eval mode; logits (softmax) or (logits, embedding) (triplet) in train mode.

        A model built with ``num_classes=0`` has no classifier and returns the
        embedding in both modes.

        Args:
            images: Normalised images, shaped ``(batch, 3, height, width)``.

        Returns:
            See above.
        """
        features = self.embed(images)
        if not self.training or self.classifier is None:
            return features
        logits = self.classifier(features)
        return logits if self.loss == "softmax" else (logits, features)


class PooledReIDModel(ReIDModel):
    """Named backbone stages run in order, global average pooling, optional ``fc``, classifier.

    Stages become top-level attributes (``conv1``, ``layer1``, ``features``, ...)
    so that keys are exactly torchreid's.
    """

    def __init__(
        self,
        stages: Mapping[str, nn.Module],
        backbone_dim: int,
        num_classes: int,
        loss: str,
        fc_dims: Sequence[int] = (),
    ) -> None:
        """Register the stages, then the head, in torchreid's order.

        Args:
            stages: Backbone modules by attribute name, in the order they run.
            backbone_dim: Channels of the last stage's feature map.
            num_classes: Identities the classifier predicts (0: no classifier).
            loss: ``"softmax"`` or ``"triplet"``.
            fc_dims: Sizes of the ``fc`` embedding layers; empty for none.
        """
        super().__init__(loss)
        for name, stage in stages.items():
            self.add_module(name, stage)
        self.stage_names = tuple(stages)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = fc_embedding(backbone_dim, fc_dims)
        self.feature_dim = fc_dims[-1] if fc_dims else backbone_dim
        self.classifier = classifier_layer(self.feature_dim, num_classes)
        init_reid_weights(self)

    def featuremaps(self, images: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map."""
        x = images
        for name in self.stage_names:
            x = self.get_submodule(name)(x)
        return x

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled feature map, through ``fc`` when the model has one."""
        pooled = self.global_avgpool(self.featuremaps(images)).flatten(1)
        return pooled if self.fc is None else self.fc(pooled)
