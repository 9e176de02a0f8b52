"""The model factory does what was asked or says why not: no classifier nobody asked for, no tag dropped,
one metadata object, settings as arguments."""

from __future__ import annotations

import pytest
import torch

import modelzoo
from modelzoo import manifest
from modelzoo.errors import NotCachedError, UnknownCheckpointError, UnknownModelError
from modelzoo.models import ModelInfo, model_info
from tests.published import images, published

NAME = "osnet_x0_25"


def test_get_with_no_classes_is_an_embedding_only_model_in_both_modes(mirror):
    reference, state = published(NAME, "market1501", mirror)
    model = modelzoo.get(NAME, "market", device="cpu", num_classes=0, progress=False)
    info = model.modelzoo_info
    classifier_keys = manifest.models()[NAME].classifier_keys
    assert info.num_classes == 0 and set(info.load_report.dropped) == set(classifier_keys)
    assert not set(classifier_keys) & set(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(model(images()), reference(images()), rtol=0, atol=0)
    model.train()
    assert model(images(2)).shape == (2, 512)  # the embedding, not logits


@pytest.mark.parametrize("name", ["osnet_x0_25", "hacnn", "mlfn", "resnet50mid", "resnet50_fc512"])
def test_build_with_no_classes_has_no_classifier_keys(name):
    model = modelzoo.build(name, num_classes=0)
    assert not set(manifest.models()[name].classifier_keys) & set(model.state_dict())
    height, width = manifest.models()[name].input_size
    model.train()
    out = model(torch.randn(2, 3, height, width))
    assert out.shape == (2, manifest.models()[name].feature_dim)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "751"])
def test_a_classifier_size_that_is_no_count_is_refused(bad, mirror):
    with pytest.raises(ValueError, match="num_classes"):
        modelzoo.build(NAME, num_classes=bad)
    with pytest.raises(ValueError, match="num_classes"):
        modelzoo.get(NAME, "market", num_classes=bad, progress=False)


def test_build_honours_the_tag():
    model = modelzoo.build("osnet_x1_0.msmt17")
    info = model.modelzoo_info
    assert model.classifier.out_features == 1041 == info.num_classes
    assert info.preprocessing == manifest.resolve_checkpoint("osnet_x1_0.msmt17").preprocessing
    assert info.checkpoint is None  # no weights
    with pytest.raises(UnknownCheckpointError, match="it has"):
        modelzoo.build("osnet_x1_0.nosuchtag")


def test_info_refuses_a_tag_and_checkpoint_info_takes_it():
    with pytest.raises(UnknownModelError, match="checkpoint_info"):
        modelzoo.info("osnet_x1_0.msmt17")
    assert modelzoo.checkpoint_info("osnet_x1_0.msmt17").num_classes == 1041
    assert modelzoo.checkpoint_info("osnet_x1_0", "duke").key == "dukemtmcreid"
    with pytest.raises(UnknownCheckpointError, match="give one of them"):
        modelzoo.checkpoint_info("osnet_x1_0.msmt17", "market1501")


def test_list_checkpoints_names_every_tagged_checkpoint():
    every = modelzoo.list_checkpoints()
    assert len(every) == sum(len(r.checkpoints) for r in manifest.models().values())
    assert "osnet_x1_0.msmt17_combineall" in every and every[0] == "resnet50.market1501"
    assert modelzoo.list_checkpoints("osnet_x0_25") == [f"osnet_x0_25.{k}" for k in manifest.models()[NAME].checkpoints]
    assert all(name.endswith(".msmt17") for name in modelzoo.list_checkpoints(dataset="msmt"))
    assert "resnet50.msmt17" in modelzoo.list_checkpoints("*.msmt17")
    with pytest.raises(UnknownCheckpointError):
        modelzoo.list_checkpoints(dataset="nope")
    with pytest.raises(UnknownCheckpointError):
        modelzoo.list_models(dataset="nope")


def test_every_path_attaches_one_frozen_info(mirror):
    published(NAME, "market1501", mirror)
    built = modelzoo.build(NAME)
    untrained = modelzoo.get(NAME, "msmt17", pretrained=False)
    trained = modelzoo.get(NAME, "market", device="cpu", progress=False)
    for model in (built, untrained, trained):
        assert isinstance(model_info(model), ModelInfo)
    assert built.modelzoo_info.checkpoint is None and untrained.modelzoo_info.checkpoint is None
    assert trained.modelzoo_info.checkpoint.name == f"{NAME}.market1501"
    assert untrained.modelzoo_info.preprocessing.input_size == (256, 128)
    with pytest.raises(AttributeError):
        trained.modelzoo_info.checkpoint = None  # frozen
    assert model_info(torch.nn.Linear(2, 2)) is None


def test_load_weights_updates_the_info_of_a_built_model(mirror):
    published(NAME, "market1501", mirror)
    model = modelzoo.build(NAME)
    report = modelzoo.load_weights(model, NAME, "market", progress=False)
    assert model.modelzoo_info.checkpoint.name == f"{NAME}.market1501"
    assert model.modelzoo_info.load_report == report


def test_cache_dir_mirrors_and_offline_are_arguments_over_the_environment(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    reference, _ = published(NAME, "market1501", folder)
    monkeypatch.setenv("MODELZOO_OFFLINE", "1")  # the arguments win over the environment
    cache = tmp_path / "my-cache"
    model = modelzoo.get(NAME, "market", device="cpu", progress=False, cache_dir=cache, mirrors=[str(folder)],
                         offline=False)
    assert modelzoo.fetch.cached_path(f"{NAME}.market1501", cache_dir=cache).is_relative_to(cache)
    assert modelzoo.fetch.cached_path(f"{NAME}.market1501") is None  # MODELZOO_HOME untouched
    with torch.inference_mode():
        torch.testing.assert_close(model(images()), reference(images()), rtol=0, atol=0)
    monkeypatch.setenv("MODELZOO_OFFLINE", "0")
    with pytest.raises(NotCachedError):
        modelzoo.get(NAME, "duke", progress=False, cache_dir=cache, offline=True)


def test_evaluate_passes_progress_to_the_download(monkeypatch, tmp_path):
    from modelzoo.evaluation import pipeline

    seen = {}

    def fake_get(name, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline, "get", fake_get)
    with pytest.raises(RuntimeError, match="stop here"):
        modelzoo.evaluate(NAME, "market1501", tmp_path, progress=False, cache_dir=tmp_path)
    assert seen["progress"] is False and seen["cache_dir"] == tmp_path


def test_fetch_settings_for_a_model_object_are_refused_not_ignored(tmp_path):
    model = modelzoo.build(NAME)
    with pytest.raises(ValueError, match="already holds its weights"):
        modelzoo.evaluate(model, "market1501", tmp_path, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds its weights"):
        modelzoo.FeatureExtractor(model, "market1501")
    with pytest.raises(ValueError, match="already holds its weights"):  # cache_dir only places compiled artifacts
        modelzoo.FeatureExtractor(model, device="cpu", cache_dir=tmp_path)


def test_build_takes_the_builder_arguments_of_the_named_checkpoint():
    """VehicleID's BoT R50-ibn learns its GeM p, VERI-Wild's is the v1.0 network; keyword arguments override them."""
    from modelzoo.architectures.fastreid_heads import GeneralizedMeanPool, LearnedGeneralizedMeanPool
    from modelzoo.loading import uninitialised_build

    with uninitialised_build():
        first = modelzoo.build("bot_r50_ibn")  # its first checkpoint, Market-1501: average pooling, v0.1.1
        vehicleid = modelzoo.build("bot_r50_ibn.vehicleid")
        veriwild = modelzoo.build("bot_r50_ibn.veriwild")
        overridden = modelzoo.build("bot_r50_ibn.vehicleid", pool="avg")
        untrained = modelzoo.get("bot_r50_ibn.veriwild", pretrained=False, device="cpu")
    assert isinstance(vehicleid.heads.pool_layer, LearnedGeneralizedMeanPool)
    for model in (veriwild, untrained):
        assert isinstance(model.heads.pool_layer, GeneralizedMeanPool) and model.backbone.maxpool.ceil_mode
    assert not first.backbone.maxpool.ceil_mode and first.backbone.maxpool.padding == 1
    assert "heads.pool_layer.p" not in first.state_dict() | overridden.state_dict()
    assert vehicleid.modelzoo_info.num_classes == 13164
