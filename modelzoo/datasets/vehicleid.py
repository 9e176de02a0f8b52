"""VehicleID in fast-reid's layout, and its test protocol: one random gallery image per vehicle.

Layout (fastreid-zoo facts, section 5)::

    vehicleid/image/<image id>.jpg
    vehicleid/train_test_split/{train_list.txt, test_list_800.txt, test_list_1600.txt, test_list_2400.txt}

Each list line is ``<image id> <vehicle id>`` (``0000001 1``).  The three test
lists are the small (800 vehicles, 6,493 images), medium (1,600 / 13,377) and
large (2,400 / 19,777) test sets.  A test set has no fixed gallery: each
trial draws one gallery image per vehicle at random and queries with all the
others (:func:`random_gallery`).  The camera of an image is its own image id,
so the Market-1501 rule (drop the query's id seen by the query's camera)
drops nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelzoo.datasets._base import ImageRecord, Located, Records
from modelzoo.datasets._lists import ListedDataset, parse_list_file
from modelzoo.datasets._locate import LayoutSpec

#: Test size -> list file.
TEST_LISTS = {"small": "test_list_800.txt", "medium": "test_list_1600.txt", "large": "test_list_2400.txt"}
LIST_FILES = {"train": "train_list.txt", **TEST_LISTS}
IMAGE_FOLDER = "image"
LIST_FOLDER = "train_test_split"
_EXAMPLE_LINE = "0000001 1"

LAYOUT = LayoutSpec(
    display_name="VehicleID",
    dataset_dir="vehicleid",
    versioned_dirs=(),
    markers=(LIST_FOLDER, IMAGE_FOLDER),
    image_dirs=frozenset({IMAGE_FOLDER}),
    search_hint="vehicle",
    expected_layout="<data_root>/vehicleid/{image/<image id>.jpg, train_test_split/{train_list.txt, "
    "test_list_800.txt, test_list_1600.txt, test_list_2400.txt}}",
    obtain_advice="VehicleID is distributed by its authors (PKU) on request: unpack its image/ and "
    "train_test_split/ folders inside <data_root>/vehicleid/.",
)


class VehicleIDReader(ListedDataset):
    """Reads VehicleID's list files; each test set's query and gallery are drawn per trial."""

    name = "vehicleid"
    display_name = "VehicleID"
    layout = LAYOUT
    image_folder = IMAGE_FOLDER
    list_folder = LIST_FOLDER
    list_files = LIST_FILES
    splits: tuple[str, ...] = tuple(LIST_FILES)
    required_splits: tuple[str, ...] = tuple(TEST_LISTS)
    test_sizes: tuple[str, ...] = tuple(TEST_LISTS)
    random_gallery = True

    def records_from(self, located: Located, list_path: Path) -> tuple[ImageRecord, ...]:
        """Records of a list file: ``image/<image id>.jpg``, pid the vehicle id, camera the image id."""
        images = located.data_dir / IMAGE_FOLDER
        entries = parse_list_file(list_path, parse_list_line, _EXAMPLE_LINE)
        return tuple(ImageRecord(images / f"{image_id}.jpg", pid, int(image_id)) for image_id, pid in entries)

    def test_splits(self, size: str | None) -> tuple[str, ...]:
        """The test list of ``size``."""
        return (_checked_size(size),)

    def query_and_gallery(
        self, records: Records, size: str | None, trial: int
    ) -> tuple[tuple[ImageRecord, ...], tuple[ImageRecord, ...]]:
        """Trial ``trial`` of the test set of ``size`` (see :func:`random_gallery`)."""
        return random_gallery(records[_checked_size(size)], trial)


def _checked_size(size: str | None) -> str:
    if size is None or size not in TEST_LISTS:
        raise ValueError(f"VehicleID test size must be one of {', '.join(TEST_LISTS)}, got {size!r}")
    return size


def parse_list_line(line: str) -> tuple[str, int]:
    """``(image id, vehicle id)`` of one list line.

    Raises:
        ValueError: not two fields, or ids that are not whole numbers.
    """
    fields = line.split()
    if len(fields) != 2:
        raise ValueError(f"expected '<image id> <vehicle id>', got {len(fields)} field(s)")
    image_id, vehicle_id = fields
    if not image_id.isdigit() or not vehicle_id.isdigit():
        raise ValueError("the image id and the vehicle id must be whole numbers")
    return image_id, int(vehicle_id)


def random_gallery(records: tuple[ImageRecord, ...], trial: int) -> tuple[tuple[ImageRecord, ...], tuple[ImageRecord, ...]]:
    """Query and gallery of one VehicleID trial: one gallery image per vehicle, every other image a query.

    Trial ``t`` is seeded: ``numpy.random.default_rng(t)`` permutes the list,
    and the first image of each vehicle in that order is its gallery image
    (the draw fast-reid's reader makes after a shuffle, but reproducible:
    fast-reid draws once per run from an unseeded generator, facts 0.6).
    Both keep the list's order.

    Args:
        records: the images of one test list.
        trial: the trial number, >= 0.

    Raises:
        ValueError: a negative or non-integer trial.
    """
    if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
        raise ValueError(f"trial must be a whole number >= 0, got {trial!r}")
    chosen: dict[int, int] = {}
    for index in np.random.default_rng(trial).permutation(len(records)).tolist():
        chosen.setdefault(records[index].pid, index)
    in_gallery = set(chosen.values())
    gallery = tuple(record for index, record in enumerate(records) if index in in_gallery)
    query = tuple(record for index, record in enumerate(records) if index not in in_gallery)
    return query, gallery
