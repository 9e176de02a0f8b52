"""Readers on synthetic trees of every layout, from every kind of data_root."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from modelzoo.datasets import DATASET_NAMES, ImageRecord, ReIDSplit, read_dataset
from modelzoo.names import canonical_dataset
from modelzoo.datasets.market import parse_file_name
from modelzoo.datasets.msmt17 import parse_list_line
from modelzoo.errors import UnknownDatasetError

from .conftest import LAYOUTS


def _name_of(key: str) -> str:
    return LAYOUTS[key][0]


def _versioned(root: Path, key: str) -> Path:
    return root / LAYOUTS[key][2]


@pytest.mark.parametrize("key", list(LAYOUTS))
@pytest.mark.parametrize("where", ["parent", "dataset folder", "versioned folder"])
def test_every_kind_of_data_root_reads_the_same_split(synthetic_roots, key, where):
    root = synthetic_roots[key]
    versioned = _versioned(root, key)
    data_root = {"parent": root, "dataset folder": root / versioned.relative_to(root).parts[0],
                 "versioned folder": versioned}[where]

    split = read_dataset(_name_of(key), data_root)

    assert isinstance(split, ReIDSplit)
    assert split.name == _name_of(key)
    assert split.root == versioned
    assert split.query and split.gallery and split.train
    for record in split.query + split.gallery + split.train:
        assert isinstance(record, ImageRecord)
        assert record.path.is_file()
        assert versioned in record.path.parents


@pytest.mark.parametrize(
    ("key", "variant"),
    [("market", "Market-1501-v15.09.15"), ("duke", "DukeMTMC-reID"),
     ("msmt-v1", "MSMT17_V1"), ("msmt-v2", "MSMT17_V2")],
)
def test_variant_names_the_layout_found(synthetic_roots, key, variant):
    assert read_dataset(_name_of(key), synthetic_roots[key]).variant == variant


def test_market_without_versioned_folder_is_read_with_a_logged_warning(synthetic_roots, caplog):
    with caplog.at_level(logging.WARNING, logger="modelzoo.datasets"):
        split = read_dataset("market1501", synthetic_roots["market-unversioned"])

    assert split.root == synthetic_roots["market-unversioned"] / "market1501"
    assert "no versioned folder" in split.variant
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Market-1501-v15.09.15" in message and "deprecated" in message for message in warnings)


def test_versioned_market_logs_no_warning(synthetic_roots, caplog):
    with caplog.at_level(logging.WARNING, logger="modelzoo.datasets"):
        read_dataset("market1501", synthetic_roots["market"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _expected_from_file_names(folder: Path) -> list[tuple[str, int, int]]:
    """Hand-computed expectation: parse '<pid>_c<cam>' with a plain split, drop -1."""
    expected = []
    for path in sorted(folder.glob("*.jpg")):
        pid_text, rest = path.name.split("_", 1)
        camera = int(rest[1])  # rest starts with "c<digit>"
        if int(pid_text) != -1:
            expected.append((path.name, int(pid_text), camera - 1))
    return expected


@pytest.mark.parametrize("key", ["market", "duke"])
def test_market_style_records_follow_the_file_names(synthetic_roots, key):
    split = read_dataset(_name_of(key), synthetic_roots[key])
    versioned = _versioned(synthetic_roots[key], key)
    for records, folder in [(split.query, "query"), (split.gallery, "bounding_box_test"),
                            (split.train, "bounding_box_train")]:
        got = [(record.path.name, record.pid, record.camid) for record in records]
        assert got == _expected_from_file_names(versioned / folder)


def test_market_junk_is_dropped_distractors_kept_cameras_zero_based(synthetic_roots):
    split = read_dataset("market1501", synthetic_roots["market"])
    gallery_folder = _versioned(synthetic_roots["market"], "market") / "bounding_box_test"
    junk_files = sorted(gallery_folder.glob("-1_*.jpg"))
    distractor_files = sorted(gallery_folder.glob("0000_*.jpg"))

    assert junk_files and distractor_files  # the synthetic gallery holds both
    assert all(record.pid != -1 for record in split.gallery)
    assert {record.path for record in split.gallery}.isdisjoint(junk_files)
    assert sorted(r.path for r in split.gallery if r.pid == 0) == distractor_files
    cameras = {record.camid for record in split.query + split.gallery + split.train}
    assert min(cameras) >= 0 and max(cameras) <= 5
    assert len(split.gallery) == len(list(gallery_folder.glob("*.jpg"))) - len(junk_files)


def test_duke_cameras_go_up_to_eight(fresh_tree):
    root = fresh_tree("duke", cameras=8, cameras_per_id=8, num_train_ids=2, num_test_ids=2)
    split = read_dataset("duke", root)
    assert {record.camid for record in split.gallery} == set(range(8))


@pytest.mark.parametrize("key", ["msmt-v1", "msmt-v2"])
def test_msmt17_records_follow_the_list_files_in_order(synthetic_roots, key):
    versioned = _versioned(synthetic_roots[key], key)
    image_folders = {"msmt-v1": ("train", "test"), "msmt-v2": ("mask_train_v2", "mask_test_v2")}[key]
    split = read_dataset("msmt17", synthetic_roots[key])

    for records, list_name, folder in [
        (split.query, "list_query.txt", image_folders[1]),
        (split.gallery, "list_gallery.txt", image_folders[1]),
        (split.train, "list_train.txt", image_folders[0]),
    ]:
        expected = []
        for line in (versioned / list_name).read_text().splitlines():
            relative, pid = line.split(" ")
            camera = int(relative.split("/")[-1].split("_")[2])
            expected.append((versioned / folder / relative, int(pid), camera - 1))
        assert [(r.path, r.pid, r.camid) for r in records] == expected


def test_msmt17_train_excludes_the_validation_list(synthetic_roots):
    versioned = _versioned(synthetic_roots["msmt-v1"], "msmt-v1")
    split = read_dataset("msmt17", synthetic_roots["msmt-v1"])
    val_lines = (versioned / "list_val.txt").read_text().splitlines()
    assert val_lines
    val_paths = {versioned / "train" / line.split(" ")[0] for line in val_lines}
    assert val_paths.isdisjoint(record.path for record in split.train)


def test_train_is_optional_for_evaluation(fresh_tree, caplog):
    root = fresh_tree("market")
    train = root / "market1501" / "Market-1501-v15.09.15" / "bounding_box_train"
    for path in train.iterdir():
        path.unlink()
    train.rmdir()

    with caplog.at_level(logging.WARNING, logger="modelzoo.datasets"):
        split = read_dataset("market", root)

    assert split.train == ()
    assert split.query and split.gallery
    assert any("bounding_box_train" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("name", "pid", "camera"),
    [("0002_c1s1_000451_03.jpg", 2, 1), ("-1_c3s2_000401_03.jpg", -1, 3),
     ("0000_c6s1_000151_01.jpg", 0, 6), ("0005_c2_f0046985.jpg", 5, 2)],
)
def test_parse_file_name(name, pid, camera):
    assert parse_file_name(name) == (pid, camera)


@pytest.mark.parametrize("name", ["Thumbs.db", "c1_0002.jpg", "0002-c1s1.jpg", "abc_c1.jpg"])
def test_parse_file_name_rejects_other_names(name):
    assert parse_file_name(name) is None


def test_parse_list_line():
    assert parse_list_line("0000/0000_000_01_0303morning_0015_0.jpg 0\n") == (
        "0000/0000_000_01_0303morning_0015_0.jpg", 0, 1)
    assert parse_list_line("1040/1040_012_15_0113noon_0900_2.jpg 1040")[1:] == (1040, 15)


@pytest.mark.parametrize("line", ["0000/0000_000_01_x.jpg", "a b c", "0000/0000_000_01_x.jpg zero",
                                  "0000/0000_000.jpg 0", "0000/0000_000_xx_y.jpg 0"])
def test_parse_list_line_rejects_malformed_lines(line):
    with pytest.raises(ValueError):
        parse_list_line(line)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("market1501", "market1501"), ("market", "market1501"), ("Market-1501", "market1501"),
     ("market-1501", "market1501"), ("dukemtmcreid", "dukemtmcreid"), ("duke", "dukemtmcreid"),
     ("dukemtmc-reid", "dukemtmcreid"), ("DukeMTMC-reID", "dukemtmcreid"), ("dukemtmc", "dukemtmcreid"),
     ("msmt17", "msmt17"), ("msmt", "msmt17"), ("MSMT17", "msmt17")],
)
def test_aliases(alias, canonical):
    assert canonical_dataset(alias) == canonical
    assert canonical in DATASET_NAMES


def test_unknown_name_is_a_key_error_with_suggestions(synthetic_roots):
    with pytest.raises(KeyError) as caught:
        read_dataset("marekt", synthetic_roots["market"])
    assert isinstance(caught.value, UnknownDatasetError)
    assert "market1501" in str(caught.value)
    assert re.search(r"Did you mean .*market1501", str(caught.value))


def test_records_are_frozen(synthetic_roots):
    split = read_dataset("market", synthetic_roots["market"])
    with pytest.raises(AttributeError):
        split.query[0].pid = 3  # type: ignore[misc]
    assert "query" in split.describe() and str(split.root) in split.describe()
