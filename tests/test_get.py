"""``modelzoo.get``: manifest -> cache -> build -> strict load, tested where each thing varies.

* every checkpoint of the manifest: its architecture, built on the meta device
  (no memory, no time), holds exactly the classifier the manifest declares;
* every vintage and container the zoo used, end to end with one small network;
* every torchreid architecture, end to end once, from a file in its entry's real format;
* every way a fast-reid checkpoint is read and built (era, builder arguments,
  head), end to end once, from a file in its era's layout; the key layout of
  all 41 fast-reid files is tested against fast-reid's own code in
  tests/architectures/test_fastreid_files.py.

Parametrized over the manifest, so a new entry is tested without new test code.
"""

from __future__ import annotations

import zipfile

import pytest
import torch

import modelzoo
from modelzoo import manifest
from modelzoo.errors import CheckpointMismatchError, DownloadError, UnknownCheckpointError, UnknownModelError
from modelzoo.loading import uninitialised_build
from modelzoo.testing.checkpoints import VINTAGES, write_fastreid_checkpoint, write_for_checkpoint
from modelzoo.testing.weights import deterministic_state_dict

RECORDS = list(manifest.models().values())
CHECKPOINTS = [c for r in RECORDS for c in r.checkpoints.values()]
SMALL = "osnet_x0_25.market1501"  # a bare Drive-era file
SMALL_ZIP = "shufflenet.market1501"  # a QMUL zip


def vintage_for(checkpoint: manifest.Checkpoint) -> str | None:
    """The serialization each era of the zoo used (torchreid-zoo-facts.md 0.4, 1.6); None for fast-reid's files."""
    if checkpoint.layout == "fastreid":
        return None  # written in the entry's layout, which has no vintages
    if checkpoint.format == "zip":
        return "py2"  # QMUL archives: Python-2.7 pickles inside
    if checkpoint.filename.endswith(".pth.tar"):
        return "legacy"  # 2019 QMUL .pth.tar: pre-1.6 serialization of torchreid's dict
    return "bare"  # Google Drive OSNet files: bare state dicts


def reference(checkpoint: manifest.Checkpoint, seed: int = 0):
    """The model and state dict a published file would hold (deterministic weights)."""
    model = modelzoo.build(checkpoint.name)
    state = deterministic_state_dict(model, seed=seed)
    model.load_state_dict(state)
    return model.eval(), state


def images_for(checkpoint: manifest.Checkpoint, n: int = 2) -> torch.Tensor:
    """Random images at half the input size (HA-CNN needs exactly its own): enough to compare weights."""
    height, width = checkpoint.preprocessing.input_size
    if checkpoint.model != "hacnn":
        height, width = height // 2, width // 2
    return torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(3))


def fastreid_variants() -> list[manifest.Checkpoint]:
    """One fast-reid checkpoint per way of reading and building it: era, builder arguments and head keys."""
    variants: dict[tuple, manifest.Checkpoint] = {}
    for record in RECORDS:
        for c in record.checkpoints.values():
            if c.layout == "fastreid":
                key = (tuple(c.layout_options.items()), tuple(c.builder_args.items()), record.classifier_keys)
                variants.setdefault(key, c)
    return list(variants.values())


def assert_loads_exactly(checkpoint: manifest.Checkpoint, vintage: str | None, mirror) -> None:
    expected_model, state = reference(checkpoint)
    # ZIP_STORED: deflating 100 MB of random floats costs seconds per archive
    write_for_checkpoint(checkpoint, mirror, state, vintage=vintage, compression=zipfile.ZIP_STORED)
    model = modelzoo.get(checkpoint.name, device="cpu", progress=False)
    info = model.modelzoo_info
    assert not model.training
    assert info.checkpoint == checkpoint and info.num_classes == checkpoint.num_classes
    assert info.load_report.ok and len(info.load_report.matched) == len(state)
    images = images_for(checkpoint)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), expected_model(images), rtol=0, atol=0)


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=lambda c: c.name)
def test_every_checkpoint_declares_the_classifier_its_architecture_has(checkpoint):
    record = manifest.models()[checkpoint.model]
    with uninitialised_build():
        state = modelzoo.build(checkpoint.name).state_dict()
    assert set(record.classifier_keys) <= set(state)
    for key in record.classifier_keys:
        assert state[key].shape[0] == checkpoint.num_classes, key
    with uninitialised_build():
        headless = modelzoo.build(checkpoint.name, num_classes=0).state_dict()
    assert set(state) - set(headless) == set(record.classifier_keys)


@pytest.mark.parametrize("vintage", VINTAGES)
def test_every_vintage_loads_end_to_end(vintage, mirror):
    assert_loads_exactly(manifest.resolve_checkpoint(SMALL), vintage, mirror)


def test_a_qmul_zip_loads_end_to_end(mirror):
    assert_loads_exactly(manifest.resolve_checkpoint(SMALL_ZIP), "py2", mirror)


@pytest.mark.slow
@pytest.mark.parametrize("record", [r for r in RECORDS if r.zoo == "torchreid"], ids=lambda r: r.name)
def test_every_architecture_loads_from_a_mirror_in_its_real_format(record, mirror):
    checkpoint = next(iter(record.checkpoints.values()))
    assert_loads_exactly(checkpoint, vintage_for(checkpoint), mirror)


@pytest.mark.parametrize("checkpoint", [pytest.param(c, marks=[] if c.name == "bot_r50.market1501" else pytest.mark.slow)
                                        for c in fastreid_variants()], ids=lambda c: c.name)
def test_every_fastreid_variant_loads_from_its_era_layout(checkpoint, mirror):
    """Legacy keys and pixel buffers, the checkpoint's builder arguments (VehicleID's pool, VERI-Wild's era).

    Where names share one tensor (MGN's 8 names of one GeM: one tensor in the
    file, 8 in the cache's safetensors copy), a warm get from the copy too.
    """
    assert_loads_exactly(checkpoint, None, mirror)
    expected_model, state = reference(checkpoint)
    shared = [key for key in state if any(state[key] is state[other] for other in state if other != key)]
    if not shared:
        return
    (mirror / checkpoint.filename).unlink()  # the warm get must read the cache's copy
    model = modelzoo.get(checkpoint.name, device="cpu", progress=False)
    assert len({model.state_dict()[key].data_ptr() for key in shared}) == 1  # one module again
    images = images_for(checkpoint)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), expected_model(images), rtol=0, atol=0)


def test_a_fastreid_file_missing_a_backbone_key_or_with_one_that_fits_nothing_is_refused_with_the_lists(mirror):
    checkpoint = manifest.resolve_checkpoint("bot_r50.market1501")
    _, state = reference(checkpoint)
    del state["backbone.layer2.1.conv2.weight"]
    state["heads.mystery.weight"] = torch.zeros(3)  # no rename rule fits it: passed on for the strict load to name
    write_for_checkpoint(checkpoint, mirror, state)
    # the strict load refuses it (or, where the store checks a file's fit before caching it, the download)
    with pytest.raises((CheckpointMismatchError, DownloadError)) as caught:
        modelzoo.get(checkpoint.name, device="cpu", progress=False)
    message = str(caught.value)
    assert "1 missing: backbone.layer2.1.conv2.weight" in message and "1 unexpected: heads.mystery.weight" in message


def test_a_fastreid_file_of_another_normalisation_is_refused_and_not_cached(mirror):
    checkpoint = manifest.resolve_checkpoint("bot_r50.market1501")
    _, state = reference(checkpoint)
    write_fastreid_checkpoint(mirror / checkpoint.filename, state, "0.1.1", pixel_std=(1.0, 1.0, 1.0))
    with pytest.raises(DownloadError, match=r"pixel_std is \[1.0, 1.0, 1.0\], expected \[58.395"):
        modelzoo.get(checkpoint.name, device="cpu", progress=False)
    assert modelzoo.fetch.cached_path(checkpoint) is None


def test_second_get_reads_the_cached_safetensors_copy(mirror):
    checkpoint = manifest.resolve_checkpoint("osnet_x0_25", "market1501")
    expected_model, state = reference(checkpoint)
    write_for_checkpoint(checkpoint, mirror, state, vintage="bare")
    modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)
    (mirror / checkpoint.filename).unlink()  # the mirror is gone: the cache must serve
    copies = list(modelzoo.fetch.cached_path(checkpoint).parent.glob("*.safetensors"))
    assert len(copies) == 1
    model = modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)
    images = images_for(checkpoint)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), expected_model(images), rtol=0, atol=0)


def test_loads_through_a_loopback_http_mirror(loopback_server, tmp_path, monkeypatch):
    checkpoint = manifest.resolve_checkpoint("resnet50_fc512", "market1501")
    expected_model, state = reference(checkpoint)
    path = write_for_checkpoint(checkpoint, tmp_path, state, vintage="py2")
    loopback_server.serve("/zoo/" + checkpoint.filename, path.read_bytes())
    monkeypatch.setenv("MODELZOO_MIRROR", loopback_server.url + "/zoo/")
    model = modelzoo.get("resnet50_fc512", "market1501", device="cpu", progress=False)
    assert loopback_server.full_transfers("/zoo/" + checkpoint.filename) == 1
    images = images_for(checkpoint)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), expected_model(images), rtol=0, atol=0)


def test_other_num_classes_drops_only_the_declared_classifier(mirror):
    checkpoint = manifest.resolve_checkpoint("hacnn", "dukemtmcreid")
    _, state = reference(checkpoint)
    write_for_checkpoint(checkpoint, mirror, state, vintage="py2")
    model = modelzoo.get("hacnn", "duke", device="cpu", num_classes=10, progress=False)
    report = model.modelzoo_info.load_report
    assert set(report.dropped) == set(manifest.models()["hacnn"].classifier_keys)
    assert "classifier dropped on request" in report.summary()
    assert model.classifier_global.weight.shape[0] == 10
    for key, value in model.state_dict().items():
        if key not in report.dropped:
            torch.testing.assert_close(value, state[key], rtol=0, atol=0)


@pytest.mark.slow
def test_a_checkpoint_of_another_architecture_is_refused_with_its_keys(mirror):
    wrong = manifest.resolve_checkpoint("resnet50", "market1501")
    target = manifest.resolve_checkpoint("resnet50_fc512", "market1501")
    _, state = reference(wrong)  # resnet50 weights (no fc512 layer) under resnet50_fc512's name
    write_for_checkpoint(target, mirror, state, vintage="py2")
    with pytest.raises(DownloadError) as caught:  # refused as the mirror's file before it is trusted
        modelzoo.get("resnet50_fc512", "market1501", device="cpu", progress=False)
    message = str(caught.value)
    assert "does not fit resnet50_fc512" in message and "missing" in message and "fc.0.weight" in message
    assert "classifier.weight" in message  # 2048 vs 512 inputs: a shape mismatch, listed
    assert "Nothing was cached" in message and modelzoo.fetch.cached_path(target) is None
    modelzoo.fetch.download(target, progress=False)  # cached by the fetcher alone, which knows no architectures
    with pytest.raises(CheckpointMismatchError, match="Nothing was loaded"):
        modelzoo.get("resnet50_fc512", "market1501", device="cpu", progress=False)


def test_missing_everywhere_is_an_error_never_random_weights(mirror):
    with pytest.raises(DownloadError) as caught:
        modelzoo.get("osnet_x1_0", "msmt17", device="cpu", progress=False)
    assert "modelzoo import osnet_x1_0 msmt17" in str(caught.value)


def test_pretrained_false_builds_without_any_download(mirror):
    model = modelzoo.get("mlfn", "msmt17", device="cpu", pretrained=False)
    assert model.modelzoo_info.load_report is None and model.modelzoo_info.checkpoint is None
    assert model.classifier.out_features == 1041
    assert not model.training


def test_unknown_names_raise_before_anything_is_built():
    with pytest.raises(UnknownModelError):
        modelzoo.get("resnet51", "market1501")
    with pytest.raises(UnknownCheckpointError, match="market1501, dukemtmcreid, msmt17"):
        modelzoo.get("resnet50_fc512", "cuhk03")


def test_transforms_are_the_published_preprocessing():
    from PIL import Image

    transform = modelzoo.transforms("hacnn")
    image = Image.new("L", (50, 120), color=128)  # grayscale, any size
    tensor = transform(image)
    assert tensor.shape == (3, 160, 64)
    expected = (128 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(tensor[:, 0, 0], expected)


def test_download_by_name_and_dataset_returns_the_verified_cached_file(mirror):
    checkpoint = manifest.resolve_checkpoint("resnet50_fc512", "market1501")
    _, state = reference(checkpoint)
    write_for_checkpoint(checkpoint, mirror, state, vintage="py2", compression=zipfile.ZIP_STORED)
    path = modelzoo.download("resnet50_fc512", "market", progress=False)
    assert path == modelzoo.fetch.cached_path(checkpoint)
    assert path.name == "resnet50_fc512_market_xent.pth.tar"  # extracted from the QMUL zip
    assert modelzoo.download("resnet50_fc512.market1501", progress=False) == path
