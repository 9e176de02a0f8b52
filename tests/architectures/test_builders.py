"""Every registered architecture builds, runs and matches torchreid's state-dict spec."""

from __future__ import annotations

import socket
from unittest import mock

import pytest
import torch

from modelzoo import manifest
from modelzoo.architectures import builders
from modelzoo.architectures.fastreid import ARCHITECTURES as FASTREID_ARCHITECTURES
from tests.architectures.spec import names, spec_by_name

NUM_CLASSES = 751


def test_registry_holds_exactly_the_specified_architectures():
    # torchreid's architectures here; fast-reid's have their own tests (test_fastreid*.py)
    assert sorted(name for name in builders() if name not in FASTREID_ARCHITECTURES) == sorted(names())


@pytest.fixture(params=names())
def built(request):
    name = request.param
    torch.manual_seed(0)
    return name, builders()[name](num_classes=NUM_CLASSES), spec_by_name()[name]


def test_state_dict_keys_shapes_and_dtypes_match_spec(built):
    name, model, spec = built
    ours = {key: (list(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in model.state_dict().items()}
    theirs = {key: (shape, dtype) for key, shape, dtype in spec["state_dict"]}
    assert sorted(set(theirs) - set(ours)) == [], f"{name}: keys missing"
    assert sorted(set(ours) - set(theirs)) == [], f"{name}: unexpected keys"
    wrong = {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]}
    assert wrong == {}, f"{name}: shape/dtype differs"


def test_parameter_counts_match_spec(built):
    name, model, spec = built
    total = sum(p.numel() for p in model.parameters())
    prefixes = tuple(spec["excluded_prefixes"])
    without_head = sum(p.numel() for key, p in model.named_parameters() if not key.startswith(prefixes))
    assert total == spec["params_total"]
    assert without_head == spec["params_excluding_classifier"]


def test_eval_returns_embedding_and_train_returns_logits(built):
    name, model, spec = built
    height, width = spec["input_hw"]
    images = torch.randn(2, 3, height, width)
    model.eval()
    with torch.inference_mode():
        features = model(images)
    assert features.shape == (2, spec["output_dim_eval"])
    model.train()
    logits = model(images)
    if isinstance(logits, (tuple, list)):  # HA-CNN: global and local logits
        assert all(part.shape == (2, NUM_CLASSES) for part in logits)
    else:
        assert logits.shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", names())
def test_builders_refuse_pretrained_and_unknown_arguments(name):
    builder = builders()[name]
    with pytest.raises(TypeError, match="modelzoo.get"):
        builder(num_classes=10, pretrained=True)
    with pytest.raises(TypeError, match="colour"):
        builder(num_classes=10, colour="red")
    builder(num_classes=10, pretrained=False, use_gpu=False)  # torchreid's own arguments still work


@pytest.mark.parametrize("name", names())
def test_unknown_loss_is_refused_when_building(name):
    with pytest.raises(ValueError) as error:
        builders()[name](num_classes=NUM_CLASSES, loss="arcface")
    message = str(error.value)
    assert "arcface" in message and "softmax" in message and "triplet" in message


@pytest.mark.parametrize("name", names())
def test_state_dict_keys_come_in_torchreids_order(name):
    model = builders()[name](num_classes=NUM_CLASSES)
    assert list(model.state_dict()) == [key for key, _, _ in spec_by_name()[name]["state_dict"]]


def test_building_never_touches_the_network():
    def refuse(*args, **kwargs):
        raise AssertionError("a builder opened a socket")

    # torchreid's builders download ImageNet weights (torchvision URLs, gdown); ours only build layers.
    with mock.patch.object(socket, "socket", refuse), mock.patch.object(socket, "create_connection", refuse):
        for name in names():
            assert isinstance(builders()[name](num_classes=10, use_gpu=True), torch.nn.Module)


@pytest.mark.parametrize("name", [r.name for r in manifest.models().values() if r.params_m is not None])
def test_manifest_parameter_count_matches_the_built_model_to_the_seeds_precision(name):
    record = manifest.models()[name]
    model = builders()[name](num_classes=NUM_CLASSES)
    counted = sum(
        p.numel()
        for key, p in model.named_parameters()
        if record.params_counted == "total" or key not in record.classifier_keys
    )
    assert round(counted / 1e6, 1) == record.params_m
