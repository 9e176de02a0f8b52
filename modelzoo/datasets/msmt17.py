"""Reader for MSMT17, versions V1 and V2 (V2 = faces blurred, other folder names).

Layout (the list files are the only record of the query/gallery split)::

    msmt17/MSMT17_V1/{train,test,list_train.txt,list_val.txt,list_query.txt,list_gallery.txt}
    msmt17/MSMT17_V2/{mask_train_v2,mask_test_v2,<the same four list files>}

Each list line is ``<path relative to the image folder> <pid>``, e.g.
``0000/0000_000_01_0303morning_0015_0.jpg 0``.  Pids are used as given; the
camera is the third ``_``-separated field of the file name (``01`` -> camid 0).
Query and gallery images both live in the test folder.
"""

from __future__ import annotations

from pathlib import Path

from modelzoo.datasets._base import Advice, FixedTestSet, ImageRecord, Located, PathLike, layout_error
from modelzoo.datasets._lists import parse_list_file
from modelzoo.datasets._locate import LayoutSpec, find_data_dir
from modelzoo.errors import DatasetLayoutError

#: Version folder -> (train image folder, test image folder), in torchreid's order.
VERSIONS = {
    "MSMT17_V1": ("train", "test"),
    "MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
}

#: Split -> list file.  ``val`` is part of the training folder (merged into train
#: only when training on everything); evaluation reads ``query`` and ``gallery``.
LIST_FILES = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}

_USES_TEST_FOLDER = frozenset({"query", "gallery"})
_EXAMPLE_LINE = "0000/0000_000_01_0303morning_0015_0.jpg 0"

_IMAGE_DIRS = frozenset(folder for pair in VERSIONS.values() for folder in pair)

LAYOUT = LayoutSpec(
    display_name="MSMT17",
    dataset_dir="msmt17",
    versioned_dirs=tuple(VERSIONS),
    markers=tuple(LIST_FILES.values()) + tuple(sorted(_IMAGE_DIRS)),
    image_dirs=_IMAGE_DIRS,
    search_hint="msmt",
    expected_layout=(
        "<data_root>/msmt17/MSMT17_V1/{train,test,list_train.txt,list_val.txt,"
        "list_query.txt,list_gallery.txt} (or MSMT17_V2/{mask_train_v2,mask_test_v2,"
        "<the same list files>})"
    ),
    obtain_advice=(
        "MSMT17 is distributed by its authors on request (no public download): "
        "unpack its archive (MSMT17_V1 or MSMT17_V2) inside <data_root>/msmt17/."
    ),
)


class MSMT17Reader(FixedTestSet):
    """Reads MSMT17_V1 or MSMT17_V2 from its list files."""

    name = "msmt17"
    display_name = "MSMT17"
    splits: tuple[str, ...] = ("train", "val", "query", "gallery")

    def locate(self, data_root: PathLike) -> Located:
        """Find the version folder and tell V1 from V2.

        Args:
            data_root: torchreid's root, the ``msmt17`` folder or ``MSMT17_V1``/``MSMT17_V2``.

        Returns:
            The folder with ``variant`` set to ``MSMT17_V1`` or ``MSMT17_V2``.

        Raises:
            DatasetLayoutError: not found, nested too deep, or a version folder
                holding the other version's image folders.
        """
        data_dir = find_data_dir(LAYOUT, data_root)
        version, notes = detect_version(data_dir)
        return Located(self.name, data_dir, version, notes)

    def list_file(self, located: Located, split: str) -> Path:
        """The list file of ``split``."""
        if split not in LIST_FILES:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(LIST_FILES)}")
        return located.data_dir / LIST_FILES[split]

    def image_folder(self, located: Located, split: str) -> Path:
        """The folder the list file's paths are relative to."""
        train_folder, test_folder = VERSIONS[located.variant]
        folder = test_folder if split in _USES_TEST_FOLDER else train_folder
        return located.data_dir / folder

    def split_source(self, located: Located, split: str) -> str:
        """The list file and the image folder of a split."""
        return f"{self.list_file(located, split)} (images in {self.image_folder(located, split)})"

    def has_split(self, located: Located, split: str) -> bool:
        """True when both the list file and the image folder exist."""
        return self.list_file(located, split).is_file() and self.image_folder(located, split).is_dir()

    def read_split(self, located: Located, split: str) -> tuple[ImageRecord, ...]:
        """Records of one split, in list-file order.

        Raises:
            DatasetLayoutError: missing list file or image folder, or malformed
                lines (the message gives their line numbers).
        """
        list_path = self.list_file(located, split)
        folder = self.image_folder(located, split)
        if not list_path.is_file():
            raise _missing_list_error(list_path, split)
        if not folder.is_dir():
            raise _missing_folder_error(located, folder, split)
        return read_list_file(list_path, folder)


def detect_version(data_dir: Path) -> tuple[str, tuple[Advice, ...]]:
    """Return ``(version, notes)`` for a folder holding MSMT17 data.

    The folder's name decides when it is ``MSMT17_V1``/``MSMT17_V2``; otherwise
    the image folders present do (V1 first, like torchreid).

    Raises:
        DatasetLayoutError: the folder is named for one version but holds only
            the other version's image folders.
    """
    present = [version for version, folders in VERSIONS.items() if _has_any(data_dir, folders)]
    named = data_dir.name if data_dir.name in VERSIONS else None
    if named is not None:
        if present and named not in present:
            raise _wrong_version_error(data_dir, named, present[0])
        return named, _sibling_notes(data_dir)
    version = present[0] if present else "MSMT17_V1"
    note = Advice(
        f"MSMT17 found in {data_dir}, not in a folder named MSMT17_V1 or MSMT17_V2: "
        f"it is read as {version}, but torchreid only looks in "
        f"<root>/msmt17/MSMT17_V1 or MSMT17_V2.",
        f"move its contents into {data_dir}/{version}/.",
    )
    return version, (note,)


def parse_list_line(line: str) -> tuple[str, int, int]:
    """``(relative path, pid, 1-based camera)`` of one list line.

    Raises:
        ValueError: the line is not ``<path> <pid>`` or the file name has no
            numeric third field (the camera).
    """
    fields = line.split()
    if len(fields) != 2:
        raise ValueError(f"expected '<relative path> <pid>', got {len(fields)} field(s)")
    relative, pid_text = fields
    try:
        pid = int(pid_text)
    except ValueError:
        raise ValueError(f"pid {pid_text!r} is not an integer") from None
    name_fields = Path(relative).name.split("_")
    if len(name_fields) < 3 or not name_fields[2].isdigit():
        raise ValueError(f"file name {Path(relative).name!r} has no camera as third '_' field")
    camera = int(name_fields[2])
    if camera < 1:
        raise ValueError(f"camera {camera} in {Path(relative).name!r}; cameras start at 1")
    return relative, pid, camera


def read_list_file(list_path: Path, image_folder: Path) -> tuple[ImageRecord, ...]:
    """Parse a list file into records whose paths are under ``image_folder``.

    Raises:
        DatasetLayoutError: the file holds malformed lines (first few quoted
            with their line numbers) or no line at all.
    """
    entries = parse_list_file(list_path, parse_list_line, _EXAMPLE_LINE)
    return tuple(ImageRecord(image_folder / relative, pid, camera - 1) for relative, pid, camera in entries)


def _has_any(data_dir: Path, folders: tuple[str, ...]) -> bool:
    return any((data_dir / folder).is_dir() for folder in folders)


def _sibling_notes(data_dir: Path) -> tuple[Advice, ...]:
    """A note when both version folders sit side by side (torchreid takes V1)."""
    others = [name for name in VERSIONS if name != data_dir.name and (data_dir.parent / name).is_dir()]
    if not others:
        return ()
    return (
        Advice(
            f"{data_dir.parent} holds both {data_dir.name} and {', '.join(others)}; "
            f"reading {data_dir.name} (torchreid takes the first of MSMT17_V1, MSMT17_V2).",
            "to use the other one, pass it as data_root (--data-root) or move this one away.",
        ),
    )


def _wrong_version_error(data_dir: Path, named: str, found: str) -> DatasetLayoutError:
    named_folders = " and ".join(f"{folder}/" for folder in VERSIONS[named])
    found_folders = " and ".join(f"{folder}/" for folder in VERSIONS[found])
    return layout_error(
        f"{data_dir} is named {named} but holds {found}'s image folders "
        f"({found_folders}); {named} keeps its images in {named_folders} "
        f"(V2 is the release with blurred faces).",
        f"rename the folder to {data_dir.parent / found}.",
    )


def _missing_list_error(list_path: Path, split: str) -> DatasetLayoutError:
    return layout_error(
        f"missing list file {list_path} (the {split} split of MSMT17). MSMT17 "
        f"ships list_train.txt, list_val.txt, list_query.txt and list_gallery.txt "
        f"next to its image folders; copies circulate without them.",
        f"take the list files from the original MSMT17_V1/MSMT17_V2 archive and "
        f"put them in {list_path.parent}: the query/gallery split cannot be rebuilt "
        f"from the image names.",
    )


def _missing_folder_error(located: Located, folder: Path, split: str) -> DatasetLayoutError:
    present = sorted(entry.name for entry in located.data_dir.iterdir() if entry.is_dir())
    return layout_error(
        f"missing image folder {folder} (the {split} split of {located.variant}); "
        f"{located.data_dir} holds: {', '.join(present) or 'no folders'}.",
        f"MSMT17_V1 keeps images in train/ and test/, MSMT17_V2 in mask_train_v2/ "
        f"and mask_test_v2/: unpack the complete archive in {located.data_dir}.",
    )
