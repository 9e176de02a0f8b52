"""fast-reid's released networks (BoT, AGW, SBS, MGN), built as the code of each file's era built them.

fast-reid's 41 release files were trained with the code of its v0.1.1 era
(2020-05 .. 2020-09; the VERI-Wild file: v1.0, 2021-01).  Later code computes
a different function on the same weights, so every builder takes ``era=``:

| difference | ``"0.1.1"`` (default) | ``"1.0"`` and ``"1.4.0"`` | changed in |
| --- | --- | --- | --- |
| ResNet stem max-pool 3/2 | ``padding=1`` | ``padding=0, ceil_mode=True`` | ``42cadae`` (2020-11-06) |
| AGW (and VehicleID) ``gempool`` | GeM, learned p | GeM, fixed p = 3 | ``4d573b8`` (2020-09-10) |
| ResNeSt ``layer4`` at ``LAST_STRIDE 1`` | no dilation | dilation 2 in blocks 1-2 | ``a327a70`` (2020-12-07) |
| ResNeSt ``WITH_NL`` (AGW/SBS S50) | non-local blocks | ignored | ``a327a70`` |
| MGN branch head | shared GeM, conv, BN, ReLU, second BN | own GeM, conv, BN | ``d00ce8f`` (2020-09-01) |

``"1.0"`` and ``"1.4.0"`` build the same network; they differ in the file's
key layout only, which ``modelzoo.formats.fastreid`` translates.

Every builder has the hub's signature ``builder(num_classes, loss="softmax",
**kwargs)`` (see :mod:`modelzoo.architectures`) and accepts, besides torchreid's
``use_gpu`` / ``pretrained=False``:

* ``era``: one of :data:`ERAS`;
* ``pool`` (not MGN): one of ``"avg"``, ``"gem_fixed"``, ``"gem_learned"``,
  overriding the configuration's pool in that era (the VehicleID file is
  BoT R50-ibn with ``pool="gem_learned"``, VERI-Wild with ``era="1.0",
  pool="gem_fixed"``).

``num_classes=0`` builds the network without its classifier.  The input is
normalised like every model of the hub (ToTensor + ImageNet mean/std): see
:mod:`modelzoo.architectures.fastreid_baseline` for how that equals fast-reid's
in-model normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from modelzoo.architectures._heads import check_builder_kwargs
from modelzoo.architectures._registry import Builder, register
from modelzoo.architectures.fastreid_backbones import FastReIDResNet, ResNeSt50
from modelzoo.architectures.fastreid_baseline import FastReIDBaseline
from modelzoo.architectures.fastreid_heads import CIRCLE, LINEAR, POOL_KINDS, ClassifierSpec, EmbeddingHead
from modelzoo.architectures.fastreid_mgn import FastReIDMGN

ERAS = ("0.1.1", "1.0", "1.4.0")
DEFAULT_ERA = "0.1.1"
BACKBONE_CHANNELS = 2048


@dataclass(frozen=True)
class EraCode:
    """What fast-reid's code of one era built where the eras differ (table in the module docstring)."""

    padded_stem_pool: bool
    gempool_learns_p: bool  # what the configs' ``gempool`` meant
    resnest_layer4_dilation: int
    resnest_non_local: bool
    mgn_era_heads: bool


V011 = EraCode(
    padded_stem_pool=True,
    gempool_learns_p=True,
    resnest_layer4_dilation=1,
    resnest_non_local=True,
    mgn_era_heads=True,
)
V1 = EraCode(
    padded_stem_pool=False,
    gempool_learns_p=False,
    resnest_layer4_dilation=2,
    resnest_non_local=False,
    mgn_era_heads=False,
)
ERA_CODE = {"0.1.1": V011, "1.0": V1, "1.4.0": V1}


@dataclass(frozen=True)
class BaselineConfig:
    """One released ``Baseline`` configuration (fast-reid's yml files, facts section 2).

    Attributes:
        backbone: ``"resnet"`` or ``"resnest"``.
        depth: ResNet depth (50 or 101); ResNeSt is always 50.
        ibn: IBN-a (the ``-ibn`` configs).
        non_local: ``WITH_NL`` (AGW, SBS).
        pool: ``"avg"``, ``"gempool"`` (the era decides whether p is learned)
            or ``"gem_learned"`` (SBS's pool, learned in every era).
        triplet_feature: ``NECK_FEAT``: ``"pooled"`` (before) or ``"neck"`` (after).
        classifier: Linear (BoT, AGW) or circle softmax (SBS).
    """

    backbone: str
    depth: int
    ibn: bool
    non_local: bool
    pool: str
    triplet_feature: str
    classifier: ClassifierSpec


def _config(method: str, backbone: str) -> BaselineConfig:
    """The configuration of ``method`` (bot, agw, sbs) on ``backbone`` (r50, r50_ibn, s50, r101_ibn)."""
    kind, depth, ibn = {"r50": ("resnet", 50, False), "r50_ibn": ("resnet", 50, True),
                        "s50": ("resnest", 50, False), "r101_ibn": ("resnet", 101, True)}[backbone]  # fmt: skip
    if method == "bot":
        return BaselineConfig(kind, depth, ibn, False, "avg", "pooled", LINEAR)
    if method == "agw":
        return BaselineConfig(kind, depth, ibn, True, "gempool", "pooled", LINEAR)
    return BaselineConfig(kind, depth, ibn, True, "gem_learned", "neck", CIRCLE)


BASELINE_CONFIGS: dict[str, BaselineConfig] = {
    f"{method}_{backbone}": _config(method, backbone)
    for method in ("bot", "agw", "sbs")
    for backbone in ("r50", "r50_ibn", "s50", "r101_ibn")
}
BASELINE_OPTIONS = ("era", "pool")
MGN_OPTIONS = ("era",)
ARCHITECTURES = (*BASELINE_CONFIGS, "mgn_r50_ibn")  # every builder this module registers


def read_era(architecture: str, options: Mapping[str, Any]) -> EraCode:
    """The :class:`EraCode` named by ``options["era"]`` (default ``"0.1.1"``).

    Raises:
        ValueError: an unknown era.
    """
    era = options.get("era", DEFAULT_ERA)
    if era not in ERA_CODE:
        raise ValueError(f"{architecture}: unknown era {era!r}: use one of {', '.join(ERAS)}")
    return ERA_CODE[era]


def read_pool(architecture: str, config: BaselineConfig, era: EraCode, options: Mapping[str, Any]) -> str:
    """The pool kind: ``options["pool"]`` if given, else the configuration's pool in ``era``.

    Raises:
        ValueError: an unknown pool kind.
    """
    pool = options.get("pool")
    if pool is None:
        pool = config.pool
        if pool == "gempool":  # JDAI-CV/fast-reid 4d573b8 made ``gempool`` the fixed-p pool (#617)
            pool = "gem_learned" if era.gempool_learns_p else "gem_fixed"
    if pool not in POOL_KINDS:
        raise ValueError(f"{architecture}: unknown pool {pool!r}: use one of {', '.join(POOL_KINDS)}")
    return pool


def build_backbone(config: BaselineConfig, era: EraCode) -> nn.Module:
    """The configuration's backbone as ``era``'s code built it (``LAST_STRIDE 1``)."""
    if config.backbone == "resnest":
        return ResNeSt50(
            layer4_dilation=era.resnest_layer4_dilation, non_local=config.non_local and era.resnest_non_local
        )
    return FastReIDResNet(
        config.depth, ibn=config.ibn, non_local=config.non_local, padded_stem_pool=era.padded_stem_pool
    )


def build_baseline(architecture: str, num_classes: int, loss: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Build the ``Baseline`` network ``architecture`` (a key of :data:`BASELINE_CONFIGS`).

    Args:
        architecture: The builder's name.
        num_classes: Rows of the classifier; 0 for none.
        loss: ``"softmax"`` or ``"triplet"``.
        kwargs: The builder's extra keyword arguments (``era``, ``pool``).

    Returns:
        A :class:`FastReIDBaseline`.
    """
    check_builder_kwargs(architecture, kwargs, accepted=BASELINE_OPTIONS)
    config = BASELINE_CONFIGS[architecture]
    era = read_era(architecture, kwargs)
    pool = read_pool(architecture, config, era, kwargs)
    heads = EmbeddingHead(BACKBONE_CHANNELS, num_classes, pool=pool, classifier=config.classifier)
    return FastReIDBaseline(build_backbone(config, era), heads, loss, config.triplet_feature)


POOL_DESCRIPTIONS = {
    "avg": "global average pooling",
    "gempool": "GeM pooling (p learned in the v0.1.1 era, fixed at 3 later)",
    "gem_learned": "GeM pooling with learned p",
}


def _baseline_builder(architecture: str) -> Builder:
    """The registered builder of ``architecture``, with its own name and docstring."""
    config = BASELINE_CONFIGS[architecture]

    def builder(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
        return build_baseline(architecture, num_classes, loss, kwargs)

    builder.__name__ = builder.__qualname__ = architecture
    builder.__doc__ = (
        f"fast-reid's {architecture} network ({config.backbone}-{config.depth}"
        f"{', IBN-a' if config.ibn else ''}{', non-local' if config.non_local else ''}, "
        f"{POOL_DESCRIPTIONS[config.pool]}, {config.classifier.kind} classifier), 2048-d embedding.\n\n"
        "A builder: arguments (``era``, ``pool``), errors and result as described in\n"
        ":mod:`modelzoo.architectures.fastreid`.\n"
    )
    return builder


for _name in BASELINE_CONFIGS:
    register(_name)(_baseline_builder(_name))


@register("mgn_r50_ibn")
def mgn_r50_ibn(num_classes: int, loss: str = "softmax", **kwargs: Any) -> nn.Module:
    """fast-reid's MGN on ResNet-50-IBN (circle softmax, GeM with learned p), 8 x 256 = 2048-d embedding.

    A builder: arguments (``era``), errors and result as described in
    :mod:`modelzoo.architectures.fastreid` and
    :class:`~modelzoo.architectures.fastreid_mgn.FastReIDMGN`.
    """
    check_builder_kwargs("mgn_r50_ibn", kwargs, accepted=MGN_OPTIONS)
    era = read_era("mgn_r50_ibn", kwargs)
    return FastReIDMGN(num_classes, loss, era_heads=era.mgn_era_heads, padded_stem_pool=era.padded_stem_pool)
