"""DatasetLayoutError: every wrong layout is named, located, and comes with a fix that works."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from modelzoo.datasets import read_dataset
from modelzoo.errors import DatasetLayoutError, ModelZooError

MARKET = Path("market1501") / "Market-1501-v15.09.15"
MSMT_V1 = Path("msmt17") / "MSMT17_V1"
MSMT_V2 = Path("msmt17") / "MSMT17_V2"


def _layout_error(name: str, data_root: Path) -> str:
    with pytest.raises(DatasetLayoutError) as caught:
        read_dataset(name, data_root)
    message = str(caught.value)
    assert "\nFix: " in message, message  # every layout error says what to do
    return message


def _nest_into_itself(folder: Path) -> Path:
    """Move a folder's contents into ``folder/<its own name>``, like a double unzip."""
    inner = folder / folder.name
    inner.mkdir()
    for entry in list(folder.iterdir()):
        if entry != inner:
            shutil.move(str(entry), str(inner / entry.name))
    return inner


def test_layout_errors_are_file_not_found_errors():
    assert issubclass(DatasetLayoutError, FileNotFoundError)
    assert issubclass(DatasetLayoutError, ModelZooError)


def test_missing_data_root(tmp_path):
    message = _layout_error("market", tmp_path / "nowhere")
    assert f"{tmp_path / 'nowhere'} does not exist" in message
    assert "market1501/Market-1501-v15.09.15" in message


def test_empty_root_lists_where_it_looked(tmp_path):
    message = _layout_error("market", tmp_path)
    assert "no Market-1501 data found" in message
    for place in [tmp_path / MARKET, tmp_path / "market1501", tmp_path]:
        assert f"- {place}\n" in message + "\n"
    assert "Market-1501-v15.09.15.zip" in message


@pytest.mark.parametrize("data_root_below", ["", "market1501"])
def test_doubly_nested_market_and_its_fix(fresh_tree, data_root_below):
    root = fresh_tree("market")
    inner = _nest_into_itself(root / MARKET)

    message = _layout_error("market", root / data_root_below)

    assert "doubly nested" in message
    assert str(inner) in message
    assert f"mv '{inner}'/* '{root / MARKET}'/ && rmdir '{inner}'" in message
    # The second fix offered -- pass the inner folder -- works as is ...
    assert read_dataset("market", inner).query
    # ... and so does the first one.
    for entry in list(inner.iterdir()):
        shutil.move(str(entry), str(root / MARKET / entry.name))
    inner.rmdir()
    assert read_dataset("market", root).root == root / MARKET


def test_doubly_nested_msmt17(fresh_tree):
    root = fresh_tree("msmt", version="V2")
    inner = _nest_into_itself(root / MSMT_V2)
    message = _layout_error("msmt17", root)
    assert "doubly nested" in message and str(inner) in message


def test_data_in_an_unexpected_folder_is_found_and_named(fresh_tree):
    root = fresh_tree("duke")
    renamed = root / "my_duke_copy"
    (root / "dukemtmc-reid").rename(renamed)

    message = _layout_error("duke", root)

    found = renamed / "DukeMTMC-reID"
    assert f"data found at {found}" in message
    assert str(root / "dukemtmc-reid" / "DukeMTMC-reID") in message
    assert read_dataset("duke", found).gallery  # the suggested data_root works


def test_market_data_is_not_offered_as_duke(fresh_tree):
    root = fresh_tree("market")  # same folder names as DukeMTMC-reID
    message = _layout_error("duke", root)
    assert "no DukeMTMC-reID data found" in message
    assert "Market-1501-v15.09.15" not in message.split("\nFix:")[0]


def test_empty_versioned_folder(tmp_path):
    (tmp_path / MARKET).mkdir(parents=True)
    message = _layout_error("market", tmp_path)
    assert f"{tmp_path / MARKET} exists but holds none of" in message
    assert "bounding_box_test" in message


def test_missing_query_folder(fresh_tree):
    root = fresh_tree("market")
    shutil.rmtree(root / MARKET / "query")
    message = _layout_error("market", root)
    assert f"missing folder {root / MARKET / 'query'}" in message
    assert "bounding_box_test, bounding_box_train" in message  # what is there instead


def test_no_images(fresh_tree):
    root = fresh_tree("duke")
    gallery = root / "dukemtmc-reid" / "DukeMTMC-reID" / "bounding_box_test"
    for path in gallery.iterdir():
        path.unlink()
    message = _layout_error("duke", root)
    assert f"no *.jpg images in {gallery}" in message
    assert "0005_c2_f0046985.jpg" in message


def test_malformed_file_names_are_listed(fresh_tree):
    root = fresh_tree("market")
    query = root / MARKET / "query"
    some_image = next(query.iterdir())
    shutil.copy(some_image, query / "person.jpg")
    shutil.copy(some_image, query / "0002_c7s1_000001_01.jpg")  # Market has 6 cameras

    message = _layout_error("market", root)

    assert "2 file name(s)" in message and str(query) in message
    assert "person.jpg: does not start with <pid>_c<camera>" in message
    assert "0002_c7s1_000001_01.jpg: camera c7 outside c1..c6" in message


def test_market_pid_bound(fresh_tree):
    root = fresh_tree("market")
    query = root / MARKET / "query"
    shutil.copy(next(query.iterdir()), query / "1502_c1s1_000001_01.jpg")
    assert "pid 1502 outside -1..1501" in _layout_error("market", root)


def test_non_jpg_files_are_ignored_like_torchreid(fresh_tree):
    root = fresh_tree("market")
    (root / MARKET / "query" / "Thumbs.db").write_bytes(b"\0")
    assert read_dataset("market", root).query


@pytest.mark.parametrize("list_name", ["list_query.txt", "list_gallery.txt"])
def test_missing_msmt17_list_file(fresh_tree, list_name):
    root = fresh_tree("msmt")
    (root / MSMT_V1 / list_name).unlink()
    message = _layout_error("msmt", root)
    assert f"missing list file {root / MSMT_V1 / list_name}" in message
    assert "original MSMT17_V1/MSMT17_V2 archive" in message


def test_msmt17_folder_named_for_the_other_version(fresh_tree):
    root = fresh_tree("msmt", version="V2")
    (root / MSMT_V2).rename(root / MSMT_V1)
    message = _layout_error("msmt", root)
    assert "is named MSMT17_V1 but holds MSMT17_V2's image folders" in message
    assert f"rename the folder to {root / MSMT_V2}" in message


def test_malformed_list_lines_give_line_numbers(fresh_tree):
    root = fresh_tree("msmt")
    list_path = root / MSMT_V1 / "list_gallery.txt"
    lines = list_path.read_text().splitlines()
    lines[2] = "0001/0001_000_01_0303morning_0015_0.jpg"  # no pid
    lines[4] = lines[4].replace(" ", "  ").split()[0] + " x"  # pid not a number
    list_path.write_text("\n".join(lines) + "\n")

    message = _layout_error("msmt", root)

    assert f"2 malformed line(s) in {list_path}" in message
    assert "line 3: expected '<relative path> <pid>'" in message
    assert "line 5: pid 'x' is not an integer" in message


def test_missing_msmt17_test_folder(fresh_tree):
    root = fresh_tree("msmt")
    shutil.rmtree(root / MSMT_V1 / "test")
    message = _layout_error("msmt", root)
    assert f"missing image folder {root / MSMT_V1 / 'test'}" in message
    assert "mask_test_v2" in message


def test_msmt17_without_version_folder_is_read_with_a_warning(fresh_tree, caplog):
    root = fresh_tree("msmt", version="V2")
    for entry in list((root / MSMT_V2).iterdir()):
        shutil.move(str(entry), str(root / "msmt17" / entry.name))
    (root / MSMT_V2).rmdir()

    with caplog.at_level(logging.WARNING, logger="modelzoo.datasets"):
        split = read_dataset("msmt", root)

    assert split.variant == "MSMT17_V2"  # told apart by its image folders
    assert any("not in a folder named MSMT17_V1 or MSMT17_V2" in r.getMessage() for r in caplog.records)


def test_msmt17_v1_wins_over_v2_like_torchreid(tmp_path, caplog):
    from modelzoo.testing import synthetic

    synthetic.write_msmt17(tmp_path, version="V1", seed=1)
    synthetic.write_msmt17(tmp_path, version="V2", seed=2)
    with caplog.at_level(logging.WARNING, logger="modelzoo.datasets"):
        split = read_dataset("msmt", tmp_path)
    assert split.variant == "MSMT17_V1"
    assert any("holds both MSMT17_V1 and MSMT17_V2" in r.getMessage() for r in caplog.records)
    assert read_dataset("msmt", tmp_path / MSMT_V2).variant == "MSMT17_V2"
