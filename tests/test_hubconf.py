"""torch.hub: list, help and load on this repository, pretrained and not."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

import modelzoo
from modelzoo.testing.checkpoints import write_for_checkpoint
from modelzoo import manifest
from modelzoo.testing.weights import deterministic_state_dict

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A torch.hub cache holding this checkout as if fetched as owner/reid-modelzoo:main.

    torch.hub.list and help only take GitHub repos; with a ref and the repo
    already in the cache they never touch the network.
    """
    (tmp_path / "owner_reid-modelzoo_main").symlink_to(REPO, target_is_directory=True)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield "owner/reid-modelzoo:main"
    torch.hub.set_dir(previous)


def every_name() -> list[str]:
    return sorted(n for r in manifest.models().values() for n in (r.name, *r.aliases))


def test_list_shows_every_model_name_and_nothing_else(hub_cache):
    assert sorted(torch.hub.list(hub_cache, trust_repo=True, verbose=False)) == every_name()


def test_help_shows_the_docstring_with_published_results(hub_cache):
    text = torch.hub.help(hub_cache, "mobilenetv2_x1_0", trust_repo=True)
    assert "alias of mobilenetv2_1dot0" in text
    assert "mobilenetv2_1dot0.market1501: market1501 R1 85.6 mAP 67.3" in text


def test_help_of_a_fastreid_spelling_names_its_zoo_and_every_metric(hub_cache):
    text = torch.hub.help(hub_cache, "sbs_r101-ibn", trust_repo=True)
    assert "alias of sbs_r101_ibn): fast-reid's sbs_r101_ibn, input 384x128" in text
    assert "sbs_r101_ibn.market1501: market1501 R1 96.3 mAP 90.3 mINP 70.0" in text


def test_load_pretrained_from_a_local_mirror(tmp_path, monkeypatch):
    checkpoint = manifest.resolve_checkpoint("resnet50_fc512", "market1501")
    reference = modelzoo.build("resnet50_fc512", num_classes=751)
    state = deterministic_state_dict(reference, seed=5)
    reference.load_state_dict(state)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_for_checkpoint(checkpoint, mirror, state, vintage="py2", compression=zipfile.ZIP_STORED)
    monkeypatch.setenv("MODELZOO_MIRROR", str(mirror))
    model = torch.hub.load(str(REPO), "resnet50_fc512", source="local", pretrained=True, dataset="market1501",
                           device="cpu", progress=False)
    images = torch.randn(2, 3, 256, 128)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), reference.eval()(images), rtol=0, atol=0)


def test_load_without_weights_downloads_nothing():
    model = torch.hub.load(str(REPO), "osnet_ain_x0_25", source="local", device="cpu")
    assert model.modelzoo_info.checkpoint is None and model.modelzoo_info.load_report is None
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 256, 128)).shape == (1, 512)


def test_load_through_the_github_style_cache(hub_cache):
    model = torch.hub.load(hub_cache, "osnet_x0_25", trust_repo=True, device="cpu")
    assert model.modelzoo_info.record.name == "osnet_x0_25"
