"""Fast loading: meta-device build that adopts the checkpoint's tensors, and a cheap ``import modelzoo``.

``get()`` builds the network on the meta device without initialising it and
takes over the tensors read from the safetensors cache (issue #6, target 4).
These tests pin down what that must not change: exact outputs, strict key
checks, a model that trains and moves like a normally built one, a normal
build wherever adopting is not possible, and nothing heavy imported by
``import modelzoo``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import modelzoo
from modelzoo.testing.checkpoints import write_for_checkpoint
from modelzoo import models as hub, manifest
from modelzoo.errors import CheckpointMismatchError
from modelzoo.loading import load_strict, meta_tensors, uninitialised_build
from tests.published import images, published
from modelzoo.testing.weights import deterministic_state_dict

REPO = Path(__file__).resolve().parent.parent


def assert_ordinary_tensors(model: nn.Module) -> None:
    """Every tensor is a real, contiguous CPU tensor with storage of its own."""
    seen = set()
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        assert tensor.device.type == "cpu" and not tensor.is_meta, name
        assert tensor.is_contiguous(), name
        pointer = tensor.untyped_storage().data_ptr()
        assert pointer not in seen, f"{name} shares storage with another tensor"
        seen.add(pointer)
    assert all(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------
# get(): adopted tensors


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_adopted_weights_give_exact_outputs_and_ordinary_tensors(cache, mirror):
    reference, state = published("osnet_x0_25", "market1501", mirror)
    if cache == "warm":
        modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)  # writes the safetensors copy
    model = modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)
    assert meta_tensors(model) == []
    assert_ordinary_tensors(model)
    assert model.modelzoo_info.load_report.ok and len(model.modelzoo_info.load_report.matched) == len(state)
    with torch.inference_mode():
        torch.testing.assert_close(model(images()), reference(images()), rtol=0, atol=0)


def test_a_model_from_get_trains(mirror):
    published("osnet_x0_25", "market1501", mirror)
    modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)
    model = modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)  # warm: safetensors tensors
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logits = model(images(4))
    assert logits.shape == (4, 751)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    optimizer.step()
    after = model.state_dict()
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
    assert not torch.equal(after["conv1.bn.running_mean"], before["conv1.bn.running_mean"])
    # the cache file is untouched: a new get() gives the published weights again
    again = modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)
    torch.testing.assert_close(again.state_dict()["classifier.weight"], before["classifier.weight"], rtol=0, atol=0)


def test_other_num_classes_is_built_normally_and_drops_only_the_classifier(mirror):
    _, state = published("osnet_x0_25", "market1501", mirror)
    model = modelzoo.get("osnet_x0_25", "market", device="cpu", num_classes=10, progress=False)
    classifier_keys = set(manifest.models()["osnet_x0_25"].classifier_keys)
    assert set(model.modelzoo_info.load_report.dropped) == classifier_keys
    assert meta_tensors(model) == []
    assert_ordinary_tensors(model)
    assert model.classifier.weight.shape == (10, 512)
    assert torch.isfinite(model.classifier.weight).all() and model.classifier.weight.abs().sum() > 0
    for key, value in model.state_dict().items():
        if key not in classifier_keys:
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_a_mismatching_checkpoint_is_refused_before_anything_is_adopted(mirror):
    wrong = manifest.resolve_checkpoint("osnet_x0_5", "market1501")
    target = manifest.resolve_checkpoint("osnet_x0_25", "market1501")
    state = deterministic_state_dict(modelzoo.build("osnet_x0_5", num_classes=wrong.num_classes))
    write_for_checkpoint(target, mirror, state, vintage="bare")
    modelzoo.fetch.download(target, progress=False)  # the fetcher alone does not know architectures
    with pytest.raises(CheckpointMismatchError, match="with another shape.*Nothing was loaded"):
        modelzoo.get("osnet_x0_25", "market1501", device="cpu", progress=False)


@pytest.mark.parametrize("obstacle", ["cannot build on meta", "tensor left on meta"])
def test_falls_back_to_a_normal_build_with_the_same_result(obstacle, mirror, monkeypatch):
    reference, _ = published("osnet_x0_25", "market1501", mirror)
    if obstacle == "cannot build on meta":
        def refuse():
            raise NotImplementedError("no meta kernel")

        monkeypatch.setattr(hub, "uninitialised_build", refuse)
    else:
        monkeypatch.setattr(hub, "meta_tensors", lambda model: ["some_buffer"])
    model = modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)
    assert model.modelzoo_info.load_report.ok
    assert_ordinary_tensors(model)
    with torch.inference_mode():
        torch.testing.assert_close(model(images()), reference(images()), rtol=0, atol=0)


# --------------------------------------------------------------------------
# the building blocks


class Toy(nn.Module):
    def __init__(self, non_persistent: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        self.gain = nn.init.calculate_gain("relu")  # an init helper that returns a value still works
        if non_persistent:
            self.register_buffer("scale", torch.ones(4), persistent=False)


def test_uninitialised_build_makes_meta_tensors_without_touching_the_random_generator():
    state_before = torch.random.get_rng_state()
    with uninitialised_build():
        toy = Toy()
    assert torch.equal(torch.random.get_rng_state(), state_before)
    assert all(t.is_meta for t in toy.state_dict().values())
    assert toy.gain == pytest.approx(2 ** 0.5)
    assert torch.randn(2).device.type == "cpu"  # the mode ends with the block
    assert set(meta_tensors(toy)) == set(toy.state_dict())


def test_meta_tensors_names_what_no_state_dict_can_fill():
    with uninitialised_build():
        toy = Toy(non_persistent=True)
    state = deterministic_state_dict(Toy())
    load_strict(toy, state, assign=True)
    assert meta_tensors(toy) == ["scale"]


def test_assign_adopts_tensors_and_fixes_dtype_layout_and_shared_storage():
    with uninitialised_build():
        toy = Toy()
    state = deterministic_state_dict(Toy())
    kept = state["conv.weight"]
    state["fc.weight"] = state["fc.weight"].t().contiguous().t()  # non-contiguous view
    state["fc.bias"] = state["fc.bias"].double()  # another dtype
    shared = torch.randn(8)
    state["bn.weight"], state["bn.bias"] = shared[:4], shared[4:]  # one storage for two tensors
    report = load_strict(toy, state, assign=True)
    assert report.ok and meta_tensors(toy) == []
    assert toy.conv.weight.data_ptr() == kept.data_ptr()  # adopted, not copied
    assert toy.fc.weight.is_contiguous() and toy.fc.bias.dtype == torch.float32
    assert toy.bn.weight.untyped_storage().data_ptr() != toy.bn.bias.untyped_storage().data_ptr()
    for key, value in toy.state_dict().items():
        torch.testing.assert_close(value, state[key].to(value.dtype), rtol=0, atol=0)
    assert isinstance(toy.conv.weight, nn.Parameter) and toy.conv.weight.requires_grad


def test_assign_refuses_a_mismatch_and_leaves_the_model_untouched():
    with uninitialised_build():
        toy = Toy()
    state = deterministic_state_dict(Toy())
    del state["fc.bias"]
    with pytest.raises(CheckpointMismatchError, match="missing: fc.bias"):
        load_strict(toy, state, assign=True)
    assert all(t.is_meta for t in toy.state_dict().values())


# --------------------------------------------------------------------------
# import cost


HEAVY = ("torch", "torchvision", "numpy", "requests", "huggingface_hub", "safetensors", "PIL", "tqdm")


def test_import_modelzoo_info_and_list_models_import_nothing_heavy():
    code = (
        "import json, sys, modelzoo\n"
        "after_import = sorted(sys.modules)\n"
        "modelzoo.info('resnet50'); modelzoo.list_models('osnet*'); modelzoo.__version__\n"
        "print(json.dumps([after_import, sorted(sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    after_import, after_calls = json.loads(result.stdout)
    for loaded in (after_import, after_calls):
        heavy = sorted({name.split(".")[0] for name in loaded} & set(HEAVY))
        assert heavy == [], f"imported: {heavy}"
    assert "modelzoo.manifest" in after_calls  # the calls did run
