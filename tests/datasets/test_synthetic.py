"""The synthetic writers: exact real layouts and names, real JPEGs, identity-dependent content."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelzoo.datasets import read_dataset
from modelzoo.testing import synthetic

from .conftest import LAYOUTS

_MARKET_NAME = re.compile(r"^(\d{4}|-1)_c[1-6]s[1-6]_\d{6}_\d{2}\.jpg$")
_DUKE_NAME = re.compile(r"^\d{4}_c[1-8]_f\d{7}\.jpg$")
_MSMT_PATH = re.compile(r"^(\d{4})/\1_\d{3}_(\d{2})_\d{4}(morning|noon|afternoon)_\d{4}_\d\.jpg$")


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_market_names_follow_the_real_scheme(synthetic_roots):
    data_dir = synthetic_roots["market"] / LAYOUTS["market"][2]
    assert sorted(p.name for p in data_dir.iterdir()) == ["bounding_box_test", "bounding_box_train", "query"]
    for folder in data_dir.iterdir():
        names = [path.name for path in _files(folder)]
        assert names and all(_MARKET_NAME.match(name) for name in names), folder
        special = [name for name in names if name.startswith(("-1_", "0000_"))]
        # Junk (-1) and distractors (0000) exist in the gallery only, like the real set.
        assert bool(special) == (folder.name == "bounding_box_test")


def test_duke_names_follow_the_real_scheme(synthetic_roots):
    data_dir = synthetic_roots["duke"] / LAYOUTS["duke"][2]
    assert sorted(p.name for p in data_dir.iterdir()) == ["bounding_box_test", "bounding_box_train", "query"]
    for path in _files(data_dir):
        assert _DUKE_NAME.match(path.name), path


@pytest.mark.parametrize(("key", "train", "test"), [("msmt-v1", "train", "test"),
                                                    ("msmt-v2", "mask_train_v2", "mask_test_v2")])
def test_msmt17_layout_and_list_files(synthetic_roots, key, train, test):
    data_dir = synthetic_roots[key] / LAYOUTS[key][2]
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(
        [train, test, "list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt"])
    listed: set[Path] = set()
    for list_name, folder in [("list_train.txt", train), ("list_val.txt", train),
                              ("list_query.txt", test), ("list_gallery.txt", test)]:
        for line in (data_dir / list_name).read_text().splitlines():
            relative, pid = line.split(" ")
            match = _MSMT_PATH.match(relative)
            assert match, line
            assert int(match.group(1)) == int(pid)
            assert 1 <= int(match.group(2)) <= 15
            listed.add(data_dir / folder / relative)
    # Every image is listed exactly once, and every listed image exists.
    assert listed == set(_files(data_dir / train)) | set(_files(data_dir / test))


def test_msmt17_train_and_test_pids_both_start_at_zero(synthetic_roots):
    split = read_dataset("msmt", synthetic_roots["msmt-v1"])
    assert min(r.pid for r in split.train) == 0 and min(r.pid for r in split.query) == 0


@pytest.mark.parametrize("key", list(LAYOUTS))
def test_images_are_real_jpegs_of_the_requested_size(synthetic_roots, key):
    split = read_dataset(LAYOUTS[key][0], synthetic_roots[key])
    for record in split.query[:5] + split.gallery[-5:]:
        with Image.open(record.path) as image:
            assert image.format == "JPEG"
            assert image.size == (64, 128)
            image.load()


def test_image_size_is_configurable(fresh_tree):
    root = fresh_tree("duke", image_size=(256, 128), num_train_ids=1, num_test_ids=1)
    with Image.open(read_dataset("duke", root).query[0].path) as image:
        assert image.size == (128, 256)


def _histograms(records) -> np.ndarray:
    features = []
    for record in records:
        pixels = np.asarray(Image.open(record.path).convert("RGB"))
        histogram = np.concatenate(
            [np.histogram(pixels[..., channel], bins=8, range=(0, 256))[0] for channel in range(3)]
        ).astype(float)
        features.append(histogram / np.linalg.norm(histogram))
    return np.stack(features)


@pytest.mark.parametrize("key", ["market", "duke", "msmt-v1"])
def test_a_colour_histogram_ranks_the_same_identity_first(synthetic_roots, key):
    split = read_dataset(LAYOUTS[key][0], synthetic_roots[key])
    query, gallery = _histograms(split.query), _histograms(split.gallery)
    distances = ((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    hits = []
    for row, record in zip(distances, split.query):
        # The protocol's rule: same identity AND same camera does not count.
        allowed = [not (g.pid == record.pid and g.camid == record.camid) for g in split.gallery]
        best = int(np.argmin(np.where(allowed, row, np.inf)))
        hits.append(split.gallery[best].pid == record.pid)
    identities = len({record.pid for record in split.query})
    assert np.mean(hits) >= 0.6, f"rank-1 {np.mean(hits):.2f}; chance is about {1 / identities:.2f}"


@pytest.mark.parametrize("key", list(LAYOUTS))
def test_every_query_has_cross_camera_matches_and_same_camera_ones_exist(synthetic_roots, key):
    split = read_dataset(LAYOUTS[key][0], synthetic_roots[key])
    gallery_cameras: dict[int, set[int]] = defaultdict(set)
    for record in split.gallery:
        gallery_cameras[record.pid].add(record.camid)
    assert all(gallery_cameras[q.pid] - {q.camid} for q in split.query)
    same_camera = [q for q in split.query if q.camid in gallery_cameras[q.pid]]
    assert same_camera  # the protocol has something to discard


def test_sizes_are_configurable(fresh_tree):
    root = fresh_tree("market", num_train_ids=5, num_test_ids=4, cameras=4, cameras_per_id=3,
                      images_per_camera=2, query_cameras_per_id=1, num_distractors=2, num_junk=1)
    split = read_dataset("market", root)

    assert len(split.train) == 5 * 3 * 2
    assert len(split.query) == 4 * 1
    assert len(split.gallery) == 4 * 3 * 2 + 2
    assert {r.camid for r in split.query + split.gallery + split.train} <= set(range(4))
    train_cameras: dict[int, set[int]] = defaultdict(set)
    for record in split.train:
        train_cameras[record.pid].add(record.camid)
    assert all(len(cameras) == 3 for cameras in train_cameras.values())
    assert {r.pid for r in split.train}.isdisjoint(r.pid for r in split.query)


def test_duke_gallery_holds_identities_absent_from_the_query(fresh_tree):
    split = read_dataset("duke", fresh_tree("duke", num_distractor_ids=3))
    assert len({r.pid for r in split.gallery} - {r.pid for r in split.query}) == 3


def test_msmt17_validation_images_per_identity(fresh_tree):
    root = fresh_tree("msmt", num_train_ids=4, val_images_per_id=2)
    val_lines = (root / "msmt17" / "MSMT17_V1" / "list_val.txt").read_text().splitlines()
    assert len(val_lines) == 4 * 2
    assert len(read_dataset("msmt", root).train) == 4 * 3 * 2 - 4 * 2


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    first = synthetic.write_msmt17(tmp_path / "a", seed=3)
    second = synthetic.write_msmt17(tmp_path / "b", seed=3)
    third = synthetic.write_msmt17(tmp_path / "c", seed=4)

    def contents(root: Path) -> dict[Path, bytes]:
        return {path.relative_to(root): path.read_bytes() for path in _files(root)}

    assert contents(first) == contents(second)
    assert contents(first) != contents(third)


def test_returns_the_data_root_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = synthetic.write_dataset("market", "relative_root", num_train_ids=1, num_test_ids=1)
    assert root == tmp_path / "relative_root"


def test_refuses_to_mix_with_an_existing_dataset_unless_asked(tmp_path):
    synthetic.write_market1501(tmp_path, num_test_ids=3)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synthetic.write_market1501(tmp_path)
    synthetic.write_market1501(tmp_path, num_test_ids=2, query_cameras_per_id=1, overwrite=True)
    assert len(read_dataset("market", tmp_path).query) == 2


@pytest.mark.parametrize(
    ("name", "kwargs", "text"),
    [("market", {"cameras": 7}, "cameras must be in 1..6"),
     ("duke", {"cameras_per_id": 1}, "another camera"),
     ("msmt", {"query_cameras_per_id": 4}, "query_cameras_per_id"),
     ("msmt", {"version": "V3"}, "'V1' or 'V2'"),
     ("market", {"num_test_ids": 0}, "num_test_ids"),
     ("market", {"num_junk": -1}, "num_junk"),
     ("msmt", {"val_images_per_id": 6}, "val_images_per_id"),
     ("duke", {"image_size": (8, 8)}, "image_size")],
)
def test_bad_sizes_are_rejected(tmp_path, name, kwargs, text):
    with pytest.raises(ValueError, match=re.escape(text)):
        synthetic.write_dataset(name, tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())  # rejected before anything is written


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(KeyError, match="unknown dataset"):
        synthetic.write_dataset("viper", tmp_path)
