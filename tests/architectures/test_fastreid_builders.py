"""The fast-reid builders keep the hub's builder contract and count parameters as fastreid 1.4.0 does."""

from __future__ import annotations

import socket
from unittest import mock

import pytest
import torch

from modelzoo.architectures import builders
from modelzoo.architectures.fastreid import ARCHITECTURES
from modelzoo.loading import uninitialised_build

MARKET = 751


def meta_build(name: str, num_classes: int = MARKET, **kwargs) -> torch.nn.Module:
    with uninitialised_build():
        return builders()[name](num_classes=num_classes, **kwargs)


def classifier_keys(model: torch.nn.Module) -> list[str]:
    return [key for key in model.state_dict() if key == "heads.weight" or key.endswith("_head.weight")]


def test_the_registry_holds_the_13_fastreid_networks():
    assert set(ARCHITECTURES) <= set(builders())
    assert len(ARCHITECTURES) == 13


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_builders_refuse_pretrained_unknown_arguments_and_values(name):
    builder = builders()[name]
    with pytest.raises(TypeError, match="modelzoo.get"):
        builder(num_classes=10, pretrained=True)
    with pytest.raises(TypeError, match="colour.*era"):
        builder(num_classes=10, colour="red")
    with pytest.raises(ValueError, match="0.1.1"):
        builder(num_classes=10, era="0.2")
    with pytest.raises(ValueError, match="softmax"):
        builder(num_classes=10, loss="arcface")
    with pytest.raises(ValueError, match="num_classes"):
        builder(num_classes=-1)
    if name.startswith("mgn"):
        with pytest.raises(TypeError, match="pool"):
            builder(num_classes=10, pool="avg")
    else:
        with pytest.raises(ValueError, match="gem_learned"):
            builder(num_classes=10, pool="max")
    with uninitialised_build():
        builder(num_classes=10, pretrained=False, use_gpu=False, era="1.4.0")


def test_building_never_touches_the_network():
    def refuse(*args, **kwargs):
        raise AssertionError("a builder opened a socket")

    with mock.patch.object(socket, "socket", refuse), mock.patch.object(socket, "create_connection", refuse):
        for name in ARCHITECTURES:
            with uninitialised_build():
                builders()[name](num_classes=10, use_gpu=True)


@pytest.mark.parametrize("name, era", [(name, "0.1.1") for name in ARCHITECTURES] + [("mgn_r50_ibn", "1.4.0")])
def test_no_classifier_means_no_classifier_keys(name, era):
    with_classifier, without = meta_build(name, era=era), meta_build(name, num_classes=0, era=era)
    keys = classifier_keys(with_classifier)
    assert len(keys) == (8 if name.startswith("mgn") else 1)
    assert set(without.state_dict()) == set(with_classifier.state_dict()) - set(keys)


@pytest.mark.parametrize(
    "name, size", [("bot_r50", (64, 32)), pytest.param("mgn_r50_ibn", (128, 64), marks=pytest.mark.slow)]
)
def test_outputs_in_each_mode(name, size):
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    model = builders()[name](num_classes=7, loss="triplet")
    embedding_only = builders()[name](num_classes=0)
    with torch.no_grad():
        assert model.eval()(images).shape == (2, 2048)
        logits, feature = model.train()(images)
        assert embedding_only.eval()(images).shape == embedding_only.train()(images).shape == (2, 2048)
    parts = logits if name.startswith("mgn") else (logits,)
    assert [part.shape for part in parts] == [(2, 7)] * len(parts)
    assert feature.shape == (2, 2048)


# fastreid 1.4.0's totals (Market classes), in millions: with / without the classifier (facts section 2).
BOT_PARAMS_M = {"r50": (25.05, 23.51), "r50_ibn": (25.05, 23.51), "s50": (26.98, 25.44), "r101_ibn": (44.04, 42.50)}
NON_LOCAL_PARAMS = {"r50": 28_687, "r50_ibn": 28_687, "s50": 0, "r101_ibn": 71_713}  # 1.4.0 ResNeSt has none


def parameter_counts(name: str, era: str) -> tuple[int, int]:
    model = meta_build(name, era=era)
    total = sum(p.numel() for p in model.parameters())
    classifier = sum(model.state_dict()[key].numel() for key in classifier_keys(model))
    return total, total - classifier


@pytest.mark.parametrize("backbone", BOT_PARAMS_M)
def test_parameter_counts_equal_fastreid_1_4_0(backbone):
    bot = parameter_counts(f"bot_{backbone}", "1.4.0")
    assert tuple(round(count / 1e6, 2) for count in bot) == BOT_PARAMS_M[backbone]
    agw, sbs = parameter_counts(f"agw_{backbone}", "1.4.0"), parameter_counts(f"sbs_{backbone}", "1.4.0")
    assert [a - b for a, b in zip(agw, bot, strict=True)] == [NON_LOCAL_PARAMS[backbone]] * 2
    assert [s - a for s, a in zip(sbs, agw, strict=True)] == [1, 1]  # SBS's learned GeM p


def test_mgn_parameter_counts_equal_fastreid_1_4_0():
    assert tuple(round(count / 1e6, 2) for count in parameter_counts("mgn_r50_ibn", "1.4.0")) == (70.35, 68.81)
