"""The CNN families (ResNet, SE-ResNet, DenseNet, SqueezeNet, MobileNetV2, ShuffleNet).

Beyond the shared contract of ``test_builders.py`` and ``test_parity.py``:
the ``triplet`` output, the loss check, key order, and building offline.
"""

from __future__ import annotations

import socket
from unittest import mock

import pytest
import torch

import oracle
from modelzoo.architectures import builders
from modelzoo.architectures._heads import ACCEPTED_LOSSES
from tests.architectures.spec import ORACLE_FACTORIES, spec_by_name
from weights import deterministic_state_dict

NUM_CLASSES = 751
CNN_NAMES = [
    "resnet50",
    "resnet50_fc512",
    "resnet50mid",
    "se_resnet50_fc512",
    "densenet121_fc512",
    "squeezenet1_0_fc512",
    "mobilenetv2_1dot0",
    "mobilenetv2_1dot4",
    "shufflenet",
]


def _torchreid_model(name: str, loss: str) -> torch.nn.Module:
    relative, attribute = ORACLE_FACTORIES[spec_by_name()[name]["torchreid_name"]]
    return getattr(oracle.load(relative), attribute)(num_classes=NUM_CLASSES, loss=loss, pretrained=False)


@pytest.mark.parametrize("name", CNN_NAMES)
def test_triplet_training_returns_logits_and_embedding_like_torchreid(name):
    ours = builders()[name](num_classes=NUM_CLASSES, loss="triplet")
    theirs = _torchreid_model(name, "triplet")
    state = deterministic_state_dict(theirs, seed=99)
    ours.load_state_dict(state, strict=True)
    theirs.load_state_dict(state, strict=True)
    height, width = spec_by_name()[name]["input_hw"]
    images = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(3))
    ours.train()
    theirs.train()
    with torch.no_grad():
        got = ours(images)
        expected = theirs(images)
    assert isinstance(got, tuple) and len(got) == 2
    logits, features = got
    assert logits.shape == (2, NUM_CLASSES)
    assert features.shape == (2, spec_by_name()[name]["output_dim_eval"])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("name", CNN_NAMES)
def test_unknown_loss_is_refused_when_building(name):
    with pytest.raises(ValueError) as error:
        builders()[name](num_classes=NUM_CLASSES, loss="arcface")
    message = str(error.value)
    assert "arcface" in message
    assert all(loss in message for loss in ACCEPTED_LOSSES)


@pytest.mark.parametrize("name", CNN_NAMES)
def test_state_dict_keys_come_in_torchreids_order(name):
    model = builders()[name](num_classes=NUM_CLASSES)
    expected = [key for key, _, _ in spec_by_name()[name]["state_dict"]]
    assert list(model.state_dict()) == expected


def test_building_never_touches_the_network():
    def refuse(*args, **kwargs):
        raise AssertionError("a builder opened a socket")

    with mock.patch.object(socket, "socket", refuse), mock.patch.object(socket, "create_connection", refuse):
        for name in CNN_NAMES:
            # torchreid's builders download ImageNet weights; ours only build layers.
            model = builders()[name](num_classes=10, use_gpu=True)
            assert isinstance(model, torch.nn.Module)



def test_channel_shuffle_interleaves_groups_like_torch():
    from modelzoo.architectures.shufflenet import ChannelShuffle

    images = torch.arange(2 * 12 * 2 * 3, dtype=torch.float32).reshape(2, 12, 2, 3)
    shuffled = ChannelShuffle(3)(images)
    torch.testing.assert_close(shuffled, torch.nn.ChannelShuffle(3)(images), rtol=0, atol=0)
    # channel j*3 + i of the output is channel i*4 + j of the input
    assert torch.equal(shuffled[:, 1], images[:, 4])
