"""OSNet, OSNet-AIN, MLFN and HA-CNN.

Beyond the shared contract of ``test_builders.py`` and ``test_parity.py``:
the ``triplet`` output, the loss check, key order, building offline, and
HA-CNN's forward on any device and dtype (torchreid's calls ``.cuda()``).
"""

from __future__ import annotations

import socket
from unittest import mock

import oracle
import pytest
import torch
from weights import deterministic_state_dict, fill_deterministic_

from modelzoo.architectures import builders
from modelzoo.architectures._heads import ACCEPTED_LOSSES
from tests.architectures.spec import ORACLE_FACTORIES, spec_by_name

NUM_CLASSES = 751
NAMES = [
    "osnet_x1_0",
    "osnet_x0_75",
    "osnet_x0_5",
    "osnet_x0_25",
    "osnet_ibn_x1_0",
    "osnet_ain_x1_0",
    "osnet_ain_x0_75",
    "osnet_ain_x0_5",
    "osnet_ain_x0_25",
    "mlfn",
    "hacnn",
]
HACNN_HW = tuple(spec_by_name()["hacnn"]["input_hw"])


def _torchreid_model(name: str, loss: str) -> torch.nn.Module:
    relative, attribute = ORACLE_FACTORIES[spec_by_name()[name]["torchreid_name"]]
    return getattr(oracle.load(relative), attribute)(num_classes=NUM_CLASSES, loss=loss, pretrained=False)


def _flatten(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [tensor for part in output for tensor in _flatten(part)]


def _structure(output):
    """The nesting of tuples in ``output``, with each tensor replaced by its shape."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    return tuple(_structure(part) for part in output)


def _hacnn(dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
    model = builders()["hacnn"](num_classes=10)
    return fill_deterministic_(model, seed=5).to(device=device, dtype=dtype)


@pytest.mark.parametrize("name", NAMES)
def test_triplet_training_returns_what_torchreid_returns(name):
    ours = builders()[name](num_classes=NUM_CLASSES, loss="triplet")
    theirs = _torchreid_model(name, "triplet")
    state = deterministic_state_dict(theirs, seed=99)
    ours.load_state_dict(state, strict=True)
    theirs.load_state_dict(state, strict=True)
    height, width = spec_by_name()[name]["input_hw"]
    images = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(3))
    ours.train()
    theirs.train()
    # torchreid's HA-CNN moves tensors it makes in forward with .cuda(): a no-op on CPU here.
    with torch.no_grad(), mock.patch.object(torch.Tensor, "cuda", lambda self, *a, **k: self):
        got = ours(images)
        expected = theirs(images)
    assert _structure(got) == _structure(expected)
    assert isinstance(got, tuple) and len(got) == 2  # (logits, features)
    for a, b in zip(_flatten(got), _flatten(expected), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_loss_is_refused_when_building(name):
    with pytest.raises(ValueError) as error:
        builders()[name](num_classes=NUM_CLASSES, loss="arcface")
    message = str(error.value)
    assert "arcface" in message
    assert all(loss in message for loss in ACCEPTED_LOSSES)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_come_in_torchreids_order(name):
    model = builders()[name](num_classes=NUM_CLASSES)
    expected = [key for key, _, _ in spec_by_name()[name]["state_dict"]]
    assert list(model.state_dict()) == expected


def test_building_never_touches_the_network():
    def refuse(*args, **kwargs):
        raise AssertionError("a builder opened a socket")

    with mock.patch.object(socket, "socket", refuse), mock.patch.object(socket, "create_connection", refuse):
        for name in NAMES:
            # torchreid's OSNet builders download ImageNet weights with gdown when
            # pretrained=True; ours only build layers.
            model = builders()[name](num_classes=10, use_gpu=True)
            assert isinstance(model, torch.nn.Module)


def test_hacnn_embeds_float64_images_like_float32_ones():
    images = torch.randn(2, 3, *HACNN_HW, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        single = _hacnn(torch.float32).eval()(images)
        double = _hacnn(torch.float64).eval()(images.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, rtol=1e-3, atol=1e-5)


def test_hacnn_trains_on_float64_images():
    # Values are not compared: batch norm over a batch of two 1x1 maps (channel
    # attention) magnifies float32 rounding far beyond any useful tolerance.
    model = _hacnn(torch.float64).train()
    logits = model(torch.randn(2, 3, *HACNN_HW, dtype=torch.float64))
    assert [(t.dtype, tuple(t.shape)) for t in logits] == [(torch.float64, (2, 10))] * 2
    assert all(torch.isfinite(t).all() for t in logits)
    sum(t.sum() for t in logits).backward()
    assert model.conv.conv.weight.grad is not None and model.conv.conv.weight.grad.dtype == torch.float64


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_hacnn_makes_its_tensors_on_the_input_device(train):
    # On the meta device any tensor hard-coded to the CPU (or to CUDA) makes forward fail.
    model = builders()["hacnn"](num_classes=10).to("meta").train(train)
    outputs = _flatten(model(torch.empty(2, 3, *HACNN_HW, device="meta")))
    expected_shapes = [(2, 10), (2, 10)] if train else [(2, 1024)]
    assert [tuple(o.shape) for o in outputs] == expected_shapes
    assert all(o.device.type == "meta" for o in outputs)


def test_torchreids_hacnn_fails_on_the_meta_device():
    """Guards the test above: a model that makes tensors on the CPU does fail there."""
    theirs = oracle.load("models/hacnn.py").HACNN(num_classes=10, use_gpu=False).to("meta").eval()
    with pytest.raises((RuntimeError, NotImplementedError)):
        theirs(torch.empty(2, 3, *HACNN_HW, device="meta"))


@pytest.mark.parametrize("shape", [(2, 3, 256, 128), (3, *HACNN_HW)])
def test_hacnn_refuses_other_input_sizes(shape):
    with pytest.raises(ValueError, match="160"):
        builders()["hacnn"](num_classes=10).eval()(torch.zeros(shape))


def test_hacnn_hard_attention_starts_with_four_stacked_stripes():
    model = builders()["hacnn"](num_classes=10)
    maps = torch.randn(2, 128, 40, 16)
    centres = model.ha1.hard_attn(maps)
    expected_y = torch.tanh(torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    torch.testing.assert_close(centres[..., 1], expected_y.expand(2, 4))
    torch.testing.assert_close(centres[..., 0], torch.zeros(2, 4))


def test_hacnn_eval_embedding_is_two_unit_halves():
    with torch.no_grad():
        embedding = _hacnn().eval()(torch.randn(2, 3, *HACNN_HW))
    norms = torch.stack([embedding[:, :512].norm(dim=1), embedding[:, 512:].norm(dim=1)])
    torch.testing.assert_close(norms, torch.ones(2, 2))
