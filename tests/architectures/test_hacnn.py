"""HA-CNN specifics beyond the shared contract of ``test_builders.py`` and ``test_parity.py``.

Its forward on any device and dtype (torchreid's calls ``.cuda()``), its input
size check, its attention and its two-part embedding.
"""

from __future__ import annotations

from tests import oracle
import pytest
import torch
from modelzoo.testing.weights import fill_deterministic_

from modelzoo.architectures import builders
from tests.architectures.spec import spec_by_name

HACNN_HW = tuple(spec_by_name()["hacnn"]["input_hw"])


def _hacnn(dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
    model = builders()["hacnn"](num_classes=10)
    return fill_deterministic_(model, seed=5).to(device=device, dtype=dtype)


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
    output = model(torch.empty(2, 3, *HACNN_HW, device="meta"))
    outputs = list(output) if isinstance(output, tuple) else [output]
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
