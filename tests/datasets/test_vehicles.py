"""VeRi-776, VehicleID and VERI-Wild: readers, test sizes, VehicleID's random gallery, the doctor.

Synthetic trees in fast-reid's layouts (fastreid-zoo facts, section 5); what
the Market-1501 family shares with VeRi (one reader class) is tested in
test_readers.py.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from modelzoo.datasets import check_layout, read_dataset, read_trials
from modelzoo.datasets import vehicleid, veriwild
from modelzoo.datasets.doctor import doctor
from modelzoo.errors import DatasetLayoutError, UnknownDatasetError
from modelzoo.names import canonical_dataset, dataset_key
from modelzoo.testing import synthetic

SIZES = ("small", "medium", "large")
FOLDERS = {"veri": "veri", "vehicleid": "vehicleid", "veriwild": "VERI-Wild"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One synthetic tree holding the three vehicle datasets (read only)."""
    folder = tmp_path_factory.mktemp("vehicles")
    for name in FOLDERS:
        synthetic.write_dataset(name, folder)
    return folder


@pytest.mark.parametrize("alias, name", [("VeRi-776", "veri"), ("veri776", "veri"), ("vehicle-id", "vehicleid"),
                                         ("VehicleID", "vehicleid"), ("VERI-Wild", "veriwild"), ("veri_wild", "veriwild")])
def test_aliases(alias, name):
    assert canonical_dataset(alias) == name and dataset_key(alias) == name


@pytest.mark.parametrize("name", list(FOLDERS))
@pytest.mark.parametrize("where", ["parent", "dataset folder"])
def test_each_dataset_reads_from_the_parent_or_its_own_folder(root, name, where):
    data_root = root if where == "parent" else root / FOLDERS[name]
    split = read_dataset(name, data_root, split=None if name == "veri" else "small")
    assert split.root == root / FOLDERS[name] and split.name == name
    assert split.query and split.gallery and split.train
    assert all(record.path.is_file() for record in split.query + split.gallery + split.train)


def test_veri_reads_vehicle_and_three_digit_camera_from_the_name(root):
    split = read_dataset("veri", root)
    for record in split.query + split.gallery:
        match = re.fullmatch(r"(\d{4})_c(\d{3})_\d{8}_\d\.jpg", record.path.name)
        assert match and (int(match[1]), int(match[2]) - 1) == (record.pid, record.camid)
    assert {r.path.parent.name for r in split.query} == {"image_query"}
    assert {r.path.parent.name for r in split.gallery} == {"image_test"}


def test_veri_refuses_a_camera_outside_1_to_20(tmp_path):
    synthetic.write_veri(tmp_path, num_train_ids=1, num_test_ids=1)
    query = tmp_path / "veri" / "image_query"
    next(query.iterdir()).rename(query / "0001_c021_00000001_0.jpg")
    with pytest.raises(DatasetLayoutError, match="camera c21 outside c1..c20"):
        read_dataset("veri", tmp_path)


@pytest.mark.parametrize("size", SIZES)
def test_vehicleid_one_random_gallery_image_per_vehicle_the_rest_are_queries(root, size):
    listed = vehicleid.VehicleIDReader().read_split(vehicleid.VehicleIDReader().locate(root), size)
    split = read_dataset("vehicleid", root, split=size)
    assert Counter(record.pid for record in split.gallery) == Counter({pid: 1 for pid in {r.pid for r in listed}})
    assert sorted(split.query + split.gallery, key=str) == sorted(listed, key=str)
    # the camera is the image id: unique, so the same-camera rule drops nothing
    assert [record.camid for record in listed] == [int(record.path.stem) for record in listed]
    assert len({record.camid for record in listed}) == len(listed)


def test_vehicleid_trials_are_seeded_and_differ(root):
    trials = read_trials("vehicleid", root, split="large", trials=4)
    assert [t.trial for t in trials] == [0, 1, 2, 3]
    again = read_trials("vehicleid", root, split="large", trials=2)
    assert [t.gallery for t in again] == [t.gallery for t in trials[:2]]
    assert len({t.gallery for t in trials}) > 1
    assert read_dataset("vehicleid", root, split="large", trial=3).gallery == trials[3].gallery
    assert len(read_trials("vehicleid", root, split="small")) == 10  # the default


def test_vehicleid_test_sets_hold_the_sizes_written(tmp_path):
    synthetic.write_vehicleid(tmp_path, test_ids=(2, 3, 5), images_per_id=4)
    for size, vehicles in zip(SIZES, (2, 3, 5)):
        split = read_dataset("vehicleid", tmp_path, split=size)
        assert (len(split.gallery), len(split.query)) == (vehicles, vehicles * 3)


@pytest.mark.parametrize("size", SIZES)
def test_veriwild_query_and_gallery_lists_with_cameras_from_vehicle_info(root, size):
    split = read_dataset("veriwild", root, split=size)
    info = (root / "VERI-Wild" / "train_test_split" / "vehicle_info.txt").read_text().splitlines()[1:]
    cameras = {line.split(";")[0]: int(line.split(";")[1]) for line in info}
    for record in split.query + split.gallery:
        name = f"{record.path.parent.name}/{record.path.stem}"
        assert (record.pid, record.camid) == (int(record.path.parent.name), cameras[name])
    assert not set(split.query) & set(split.gallery)
    assert any(g.camid == q.camid and g.pid == q.pid for q in split.query for g in split.gallery)  # dropped ones exist


def test_veriwild_image_without_a_camera_is_a_layout_error(tmp_path):
    synthetic.write_veriwild(tmp_path)
    info = tmp_path / "VERI-Wild" / "train_test_split" / "vehicle_info.txt"
    lines = info.read_text().splitlines(keepends=True)
    query_name = (tmp_path / "VERI-Wild" / "train_test_split" / "test_3000_query.txt").read_text().split()[0]
    info.write_text("".join(line for line in lines if not line.startswith(query_name + ";")))
    with pytest.raises(DatasetLayoutError, match=f"no camera for 1 image.*{query_name}"):
        read_dataset("veriwild", tmp_path, split="small")
    info.unlink()
    with pytest.raises(DatasetLayoutError, match="missing .*vehicle_info.txt"):
        read_dataset("veriwild", tmp_path, split="small")


@pytest.mark.parametrize("line", ["0000001", "0000001 1 2", "abc 1", "0000001 x"])
def test_vehicleid_malformed_list_lines(line):
    with pytest.raises(ValueError):
        vehicleid.parse_list_line(line)


@pytest.mark.parametrize("parse, line", [(veriwild.parse_list_line, "00001-000001"),
                                         (veriwild.parse_list_line, "a/000001"),
                                         (veriwild.parse_camera_line, "00001/000001"),
                                         (veriwild.parse_camera_line, "00001/000001;cam;x")])
def test_veriwild_malformed_lines(parse, line):
    with pytest.raises(ValueError):
        parse(line)


@pytest.mark.parametrize("name, kwargs, message", [
    ("market1501", {"split": "small"}, "single test set"),
    ("vehicleid", {}, "pass split="),
    ("veriwild", {"split": "tiny"}, "no split 'tiny'"),
    ("veri", {"trial": 1}, "fixed gallery"),
])
def test_a_split_or_trial_the_dataset_lacks_is_refused_before_reading(tmp_path, name, kwargs, message):
    with pytest.raises(UnknownDatasetError, match=message):
        read_dataset(name, tmp_path, **kwargs)  # an empty folder: refused before it is looked at


def test_trials_are_refused_for_a_fixed_gallery_and_counted_from_one(root):
    with pytest.raises(UnknownDatasetError, match="trials= applies only to .*vehicleid"):
        read_trials("veriwild", root, split="small", trials=2)
    with pytest.raises(ValueError, match="trials must be a whole number >= 1"):
        read_trials("vehicleid", root, split="small", trials=0)


@pytest.mark.parametrize("name", list(FOLDERS))
def test_doctor_passes_a_healthy_tree_and_checks_every_test_size(root, name):
    code, report = doctor(name, root)
    assert code == 0, report
    assert "image counts differ" in report
    sizes = SIZES if name != "veri" else ("",)
    for size in sizes:
        assert re.search(rf"all \d+ query images{' of the ' + size + ' test set' if size else ''} have gallery", report)


def test_doctor_a_missing_test_list_is_an_error_a_missing_train_list_a_warning(tmp_path):
    synthetic.write_vehicleid(tmp_path)
    lists = tmp_path / "vehicleid" / "train_test_split"
    (lists / "test_list_1600.txt").unlink()
    (lists / "train_list.txt").unlink()
    findings = check_layout("vehicleid", tmp_path)
    errors = [f for f in findings if f.level == "error"]
    assert len(errors) == 1 and "test_list_1600.txt" in errors[0].message
    assert any(f.level == "warning" and "train_list.txt" in f.message for f in findings)
    assert read_dataset("vehicleid", tmp_path, split="small").train == ()


def test_veriwild_counts_are_of_query_and_gallery_together(root):
    counts = next(f for f in check_layout("veriwild", root) if "image counts" in f.message)
    split = read_dataset("veriwild", root, split="small")
    assert f"small (query + gallery): {len(split.query) + len(split.gallery)} images, real 41,861" in counts.message


@pytest.mark.parametrize("name, kwargs, text", [
    ("vehicleid", {"test_ids": (4, 2, 8)}, "three increasing counts"),
    ("vehicleid", {"images_per_id": 1}, "images_per_id >= 2"),
    ("veriwild", {"test_ids": (0, 1, 2)}, "three increasing counts"),
    ("veri", {"cameras": 21}, "cameras must be in 1..20"),
])
def test_bad_sizes_are_rejected_before_anything_is_written(tmp_path, name, kwargs, text):
    with pytest.raises(ValueError, match=re.escape(text)):
        synthetic.write_dataset(name, tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())
