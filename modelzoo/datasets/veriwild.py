"""VERI-Wild in fast-reid's layout: separate query and gallery lists per test size, cameras from vehicle_info.txt.

Layout (fastreid-zoo facts, section 5)::

    VERI-Wild/images/<vehicle id>/<image id>.jpg
    VERI-Wild/train_test_split/{train_list.txt, vehicle_info.txt,
                                test_3000.txt, test_3000_query.txt, test_5000.txt, test_5000_query.txt,
                                test_10000.txt, test_10000_query.txt}

List lines name an image as ``<vehicle id>/<image id>`` (``00001/000001``);
``vehicle_info.txt`` has a header line, then ``<vehicle id>/<image id>;<camera>;...``
per image.  The small, medium and large test sets hold 3,000, 5,000 and
10,000 vehicles (41,861, 69,389 and 138,517 images); the protocol is
Market-1501's.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.datasets._base import ImageRecord, Located, Records, layout_error
from modelzoo.datasets._lists import ListedDataset, parse_list_file
from modelzoo.datasets._locate import LayoutSpec

#: Test size -> the number of vehicles in its list files' names.
TEST_SIZES = {"small": 3000, "medium": 5000, "large": 10000}
LIST_FILES = {
    "train": "train_list.txt",
    **{f"{size} query": f"test_{count}_query.txt" for size, count in TEST_SIZES.items()},
    **{f"{size} gallery": f"test_{count}.txt" for size, count in TEST_SIZES.items()},
}
CAMERA_FILE = "vehicle_info.txt"
IMAGE_FOLDER = "images"
LIST_FOLDER = "train_test_split"
_EXAMPLE_LINE = "00001/000001"
_EXAMPLE_INFO = "00001/000001;012;2018-03-11 11:30:59;..."

LAYOUT = LayoutSpec(
    display_name="VERI-Wild",
    dataset_dir="VERI-Wild",
    versioned_dirs=(),
    markers=(LIST_FOLDER, IMAGE_FOLDER),
    image_dirs=frozenset({IMAGE_FOLDER}),
    search_hint="wild",
    expected_layout="<data_root>/VERI-Wild/{images/<vehicle id>/<image id>.jpg, train_test_split/"
    "{train_list.txt, vehicle_info.txt, test_3000.txt, test_3000_query.txt, test_5000.txt, "
    "test_5000_query.txt, test_10000.txt, test_10000_query.txt}}",
    obtain_advice="VERI-Wild is distributed by its authors on request: unpack its images/ and "
    "train_test_split/ folders inside <data_root>/VERI-Wild/.",
)


class VERIWildReader(ListedDataset):
    """Reads VERI-Wild's list files, with each image's camera from ``vehicle_info.txt``."""

    name = "veriwild"
    display_name = "VERI-Wild"
    layout = LAYOUT
    image_folder = IMAGE_FOLDER
    list_folder = LIST_FOLDER
    list_files = LIST_FILES
    splits: tuple[str, ...] = tuple(LIST_FILES)
    required_splits: tuple[str, ...] = tuple(split for split in LIST_FILES if split != "train")
    test_sizes: tuple[str, ...] = tuple(TEST_SIZES)
    random_gallery = False

    def __init__(self) -> None:
        """A reader that reads ``vehicle_info.txt`` once for all the lists it reads."""
        self._cameras: dict[Path, dict[str, int]] = {}

    def records_from(self, located: Located, list_path: Path) -> tuple[ImageRecord, ...]:
        """Records of a list file: pid the vehicle id, camera from ``vehicle_info.txt``.

        Raises:
            DatasetLayoutError: malformed lines, a missing ``vehicle_info.txt``,
                or an image it gives no camera for.
        """
        names = parse_list_file(list_path, parse_list_line, _EXAMPLE_LINE)
        info_path = located.data_dir / LIST_FOLDER / CAMERA_FILE
        if info_path not in self._cameras:
            self._cameras[info_path] = read_cameras(info_path)
        cameras = self._cameras[info_path]
        unknown = [name for name, _ in names if name not in cameras]
        if unknown:
            raise layout_error(
                f"{CAMERA_FILE} gives no camera for {len(unknown):,} image(s) of {list_path.name}, "
                f"e.g. {', '.join(unknown[:3])}.",
                f"{CAMERA_FILE} and the list files must come from the same archive: restore both.",
            )
        images = located.data_dir / IMAGE_FOLDER
        return tuple(ImageRecord(images / f"{name}.jpg", pid, cameras[name]) for name, pid in names)

    def test_splits(self, size: str | None) -> tuple[str, ...]:
        """The query and gallery lists of ``size``."""
        if size is None or size not in TEST_SIZES:
            raise ValueError(f"VERI-Wild test size must be one of {', '.join(TEST_SIZES)}, got {size!r}")
        return f"{size} query", f"{size} gallery"

    def query_and_gallery(
        self, records: Records, size: str | None, trial: int
    ) -> tuple[tuple[ImageRecord, ...], tuple[ImageRecord, ...]]:
        """The query and gallery lists of ``size``."""
        query, gallery = self.test_splits(size)
        return records[query], records[gallery]


def parse_list_line(line: str) -> tuple[str, int]:
    """``("<vehicle id>/<image id>", vehicle id)`` of one list line.

    Raises:
        ValueError: not ``<vehicle id>/<image id>`` with whole-number ids.
    """
    name = line.strip()
    vehicle, slash, image = name.partition("/")
    if not slash or not vehicle.isdigit() or not image.isdigit():
        raise ValueError("expected '<vehicle id>/<image id>' with whole-number ids")
    return name, int(vehicle)


def parse_camera_line(line: str) -> tuple[str, int]:
    """``("<vehicle id>/<image id>", camera)`` of one ``vehicle_info.txt`` line.

    Raises:
        ValueError: fewer than two ``;`` fields, or a camera that is not a whole number.
    """
    fields = line.strip().split(";")
    if len(fields) < 2 or not fields[1].strip().isdigit():
        raise ValueError("expected '<vehicle id>/<image id>;<camera>;...' with a whole-number camera")
    return fields[0], int(fields[1])


def read_cameras(info_path: Path) -> dict[str, int]:
    """Image name -> camera, from ``vehicle_info.txt`` (after its header line).

    Raises:
        DatasetLayoutError: the file is missing or malformed.
    """
    if not info_path.is_file():
        raise layout_error(
            f"missing {info_path}: VERI-Wild's cameras are listed there.",
            f"take {CAMERA_FILE} from the original archive's train_test_split/ and put it in {info_path.parent}.",
        )
    return dict(parse_list_file(info_path, parse_camera_line, _EXAMPLE_INFO, header=True))
