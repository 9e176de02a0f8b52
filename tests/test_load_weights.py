"""modelzoo.load_weights: a zoo checkpoint into a model the caller already has, strictly, in place."""

from __future__ import annotations

import pytest
import torch

import modelzoo
from modelzoo.fetch.store import CheckpointStore
from modelzoo import fetch, manifest
from modelzoo.errors import CheckpointMismatchError
from modelzoo.formats.safetensors_file import SafetensorsFile
from tests.published import images, published

NAME, DATASET = "osnet_x0_25", "market1501"


def fresh_model(num_classes: int | None = None) -> torch.nn.Module:
    checkpoint = manifest.resolve_checkpoint(NAME, DATASET)
    return modelzoo.build(NAME, num_classes=num_classes or checkpoint.num_classes)


def assert_state_equal(model: torch.nn.Module, state: dict, skip: tuple = ()) -> None:
    own = model.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        if key not in skip:
            assert torch.equal(own[key], value), key


def forbid_general_path(monkeypatch) -> None:
    def general_path(*args, **kwargs):
        raise AssertionError("expected the bytes to be read straight into the model")

    monkeypatch.setattr(CheckpointStore, "load", general_path)


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_loads_in_place_keeping_the_parameter_objects(cache, mirror, monkeypatch):
    reference, state = published(NAME, DATASET, mirror)
    if cache == "warm":
        modelzoo.load_weights(fresh_model(), NAME, DATASET, progress=False)  # writes the safetensors copy
        forbid_general_path(monkeypatch)
    model = fresh_model().train()
    parameters = list(model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    report = modelzoo.load_weights(model, NAME, DATASET, progress=False)
    assert report.ok and set(report.matched) == set(state)
    assert all(a is b for a, b in zip(parameters, model.parameters()))
    assert model.training  # mode untouched
    assert_state_equal(model, state)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images()), reference(images()), rtol=0, atol=0)
    # the optimizer still drives the very parameters that were loaded
    model.train()
    model(images()).sum().backward()
    optimizer.step()
    assert not torch.equal(model.state_dict()["classifier.weight"], state["classifier.weight"])


def test_a_second_load_restores_the_checkpoint_after_training(mirror, monkeypatch):
    _, state = published(NAME, DATASET, mirror)
    model = fresh_model()
    modelzoo.load_weights(model, NAME, DATASET, progress=False)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    forbid_general_path(monkeypatch)
    modelzoo.load_weights(model, NAME, DATASET, progress=False)
    assert_state_equal(model, state)


def test_a_model_of_another_architecture_is_refused_and_left_untouched(mirror):
    published(NAME, DATASET, mirror)
    modelzoo.load_weights(fresh_model(), NAME, DATASET, progress=False)  # warm: the fast path is tried first
    other = modelzoo.build("osnet_x0_5", num_classes=751)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="Nothing was loaded"):
        modelzoo.load_weights(other, NAME, DATASET, progress=False)
    assert_state_equal(other, before)


def test_another_classifier_needs_drop_classifier_and_keeps_its_own(mirror):
    _, state = published(NAME, DATASET, mirror)
    modelzoo.load_weights(fresh_model(), NAME, DATASET, progress=False)
    model = fresh_model(num_classes=10)
    with pytest.raises(CheckpointMismatchError, match="classifier"):
        modelzoo.load_weights(model, NAME, DATASET, progress=False)
    own_classifier = model.classifier.weight.detach().clone()
    report = modelzoo.load_weights(model, NAME, DATASET, drop_classifier=True, progress=False)
    classifier_keys = manifest.models()[NAME].classifier_keys
    assert set(report.dropped) == set(classifier_keys)
    assert torch.equal(model.classifier.weight, own_classifier)
    backbone = {k: v for k, v in state.items() if k not in classifier_keys}
    for key, value in backbone.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_other_dtypes_and_stale_copies_take_the_general_path(mirror):
    _, state = published(NAME, DATASET, mirror)
    modelzoo.load_weights(fresh_model(), NAME, DATASET, progress=False)
    half = fresh_model().half()
    modelzoo.load_weights(half, NAME, DATASET, progress=False)
    assert half.conv1.conv.weight.dtype == torch.float16
    assert torch.equal(half.state_dict()["conv1.conv.weight"], state["conv1.conv.weight"].half())

    # a copy left by other weights (the file was replaced) is never read into the model
    weights = fetch.download(manifest.resolve_checkpoint(NAME, DATASET), progress=False)
    copy = CheckpointStore.copy_path(weights)
    _, other_state = published(NAME, DATASET, mirror, seed=5)
    from safetensors.torch import save_file

    with SafetensorsFile.open(copy) as reader:
        metadata = dict(reader.metadata)
    metadata["source_sha256"] = "0" * 64  # made from other weights than the record names
    save_file({k: v.contiguous() for k, v in other_state.items()}, str(copy), metadata=metadata)
    model = fresh_model()
    modelzoo.load_weights(model, NAME, DATASET, progress=False)
    assert_state_equal(model, state)


def test_a_read_failing_half_way_says_to_load_again(mirror, monkeypatch):
    published(NAME, DATASET, mirror)
    modelzoo.load_weights(fresh_model(), NAME, DATASET, progress=False)
    calls = []
    real_fill = SafetensorsFile._fill

    def failing_fill(self, tensor, entry):
        calls.append(entry)
        if len(calls) == 3:
            raise OSError("Input/output error")
        return real_fill(self, tensor, entry)

    monkeypatch.setattr(SafetensorsFile, "_fill", failing_fill)
    with pytest.raises(OSError, match="half-way.*load the weights again"):
        modelzoo.load_weights(fresh_model(), NAME, DATASET, progress=False)


def test_is_exported_lazily():
    assert "load_weights" in dir(modelzoo)


# --------------------------------------------------------------------------
# The training fields a torchreid file stores beside its weights (user-pain row 16)


@pytest.mark.parametrize("vintage, expected", [
    ("py2", {"epoch": 60, "rank1": 0.474}),  # the QMUL-era dict (#309: 0.474 stored, 63.2 published)
    ("torchreid-dict", {"epoch": 60, "rank1": 0.908}),
    ("bare", {}),  # the Drive files hold weights only
])
def test_get_shows_the_stored_training_record_and_says_it_is_not_the_zoo_figure(vintage, expected, mirror, caplog):
    import logging
    import zipfile

    from modelzoo.testing.checkpoints import write_for_checkpoint

    checkpoint = manifest.resolve_checkpoint(NAME, DATASET)
    state = fresh_model().state_dict()
    write_for_checkpoint(checkpoint, mirror, state, vintage=vintage, compression=zipfile.ZIP_STORED)
    with caplog.at_level(logging.INFO, logger="modelzoo.models"):
        cold = modelzoo.get(NAME, DATASET, device="cpu", progress=False)
    warm = modelzoo.get(NAME, DATASET, device="cpu", progress=False)  # from the safetensors copy's header
    assert cold.modelzoo_info.training_record == warm.modelzoo_info.training_record == expected
    said = [r.getMessage() for r in caplog.records if "training loop" in r.getMessage()]
    if expected:
        assert said and f"rank1={expected['rank1']}" in said[0] and f"({checkpoint.rank1:.1f})" in said[0]
    else:
        assert not said
    assert modelzoo.get(NAME, DATASET, pretrained=False, device="cpu").modelzoo_info.training_record == {}
