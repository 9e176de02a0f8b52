"""Same weights, same outputs as torchreid 0.2.5 (the reference oracle).

Both models receive identical, non-trivial weights (every parameter and buffer
set from a seed, see ``tests/weights.py``) and the same images; eval outputs
(embeddings) and train outputs (logits) must agree to float tolerance.
"""

from __future__ import annotations

import contextlib
from unittest import mock

import pytest
import torch

from tests import oracle
from modelzoo.architectures import builders
from tests.architectures.spec import ORACLE_FACTORIES, names, spec_by_name
from modelzoo.testing.weights import deterministic_state_dict

NUM_CLASSES = 751


def _reference_model(torchreid_name: str, loss: str) -> torch.nn.Module:
    relative, attribute = ORACLE_FACTORIES[torchreid_name]
    factory = getattr(oracle.load(relative), attribute)
    kwargs = {"num_classes": NUM_CLASSES, "loss": loss}
    if attribute != "HACNN":
        kwargs["pretrained"] = False  # never download anything
    return factory(**kwargs)


@contextlib.contextmanager
def _cuda_calls_are_noops():
    """torchreid's HA-CNN calls ``.cuda()`` inside forward; on CPU make that a no-op."""
    with mock.patch.object(torch.Tensor, "cuda", lambda self, *a, **k: self):
        yield


def _flatten(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [tensor for part in output for tensor in _flatten(part)]


def _structure(output):
    """The nesting of tuples in ``output``, with each tensor replaced by its shape."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    return tuple(_structure(part) for part in output)


def _parity_size(name: str) -> tuple[int, int]:
    """Half the input size: the same maths at a quarter of the cost (test_builders runs the full size).

    HA-CNN's attention crops assume exactly 160x64, so it keeps its size.
    """
    height, width = spec_by_name()[name]["input_hw"]
    return (height, width) if name == "hacnn" else (height // 2, width // 2)


@pytest.mark.parametrize("loss", ["softmax", "triplet"])
@pytest.mark.parametrize("name", names())
def test_outputs_equal_torchreid(name, loss):
    spec = spec_by_name()[name]
    ours = builders()[name](num_classes=NUM_CLASSES, loss=loss)
    theirs = _reference_model(spec["torchreid_name"], loss)
    state = deterministic_state_dict(theirs, seed=1234)
    theirs.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, *_parity_size(name), generator=torch.Generator().manual_seed(7))
    # eval mode ignores the loss: the triplet case only needs the training output
    for train in (False, True) if loss == "softmax" else (True,):
        ours.train(train)
        theirs.train(train)
        with torch.no_grad(), _cuda_calls_are_noops():
            torch.manual_seed(0)  # same dropout masks, should a model use dropout
            got = ours(images)
            torch.manual_seed(0)
            expected = theirs(images)
        assert _structure(got) == _structure(expected)
        if train and loss == "triplet":
            assert isinstance(got, tuple) and len(got) == 2  # (logits, features)
        for a, b in zip(_flatten(got), _flatten(expected), strict=True):
            assert b.abs().max() > 0, "reference output is all zeros: weights too trivial"
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
