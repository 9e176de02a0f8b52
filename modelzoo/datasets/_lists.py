"""List files: one image per line, parsed with every malformed line reported (MSMT17, VehicleID, VERI-Wild)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from modelzoo.datasets._base import ImageRecord, Located, PathLike, layout_error
from modelzoo.datasets._locate import LayoutSpec, find_data_dir
from modelzoo.errors import DatasetLayoutError

T = TypeVar("T")

_MAX_EXAMPLES = 5


def parse_list_file(list_path: Path, parse_line: Callable[[str], T], example: str, *, header: bool = False) -> list[T]:
    """``parse_line`` of every non-blank line of ``list_path``, in file order.

    Args:
        list_path: the list file.
        parse_line: one line -> its entry; raises ValueError for a malformed line.
        example: a well-formed line, quoted in the messages.
        header: skip the first line (a column header).

    Raises:
        DatasetLayoutError: malformed lines (the first few quoted with their
            line numbers), or no entry at all.
    """
    entries: list[T] = []
    problems: list[str] = []
    with open(list_path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip() or (header and number == 1):
                continue  # a trailing blank line is harmless
            try:
                entries.append(parse_line(line))
            except ValueError as error:
                problems.append(f"line {number}: {error}: {line.rstrip()!r}")
    if problems:
        raise malformed_list_error(list_path, problems, example)
    if not entries:
        raise layout_error(
            f"{list_path} lists no images.",
            f"each line should read like '{example}': restore the list files of the original archive.",
        )
    return entries


def malformed_list_error(list_path: Path, problems: list[str], example: str) -> DatasetLayoutError:
    """The error for a list file with malformed lines: the first few, then how many more."""
    shown = "".join(f"\n  - {problem}" for problem in problems[:_MAX_EXAMPLES])
    more = len(problems) - _MAX_EXAMPLES
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return layout_error(
        f"{len(problems)} malformed line(s) in {list_path}:{shown}{tail}",
        f"each line should read like '{example}': fix or remove these lines, "
        f"or restore the file from the original archive.",
    )


class ListedDataset:
    """A dataset whose splits are list files in one folder, naming images in another (VehicleID, VERI-Wild).

    Subclasses set the class attributes and :meth:`records_from`.
    """

    name: str
    display_name: str
    layout: LayoutSpec
    image_folder: str  # under the data folder
    list_folder: str  # under the data folder
    list_files: Mapping[str, str]  # split -> list file name
    splits: tuple[str, ...]  # every split with a list file

    def locate(self, data_root: PathLike) -> Located:
        """Find the folder holding the image and list folders.

        Raises:
            DatasetLayoutError: not found, or nested where it is not looked for.
        """
        return Located(self.name, find_data_dir(self.layout, data_root), self.display_name)

    def list_file(self, located: Located, split: str) -> Path:
        """The list file of ``split``."""
        if split not in self.list_files:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(self.list_files)}")
        return located.data_dir / self.list_folder / self.list_files[split]

    def split_source(self, located: Located, split: str) -> str:
        """The list file and the image folder of a split."""
        return f"{self.list_file(located, split)} (images in {located.data_dir / self.image_folder})"

    def has_split(self, located: Located, split: str) -> bool:
        """True when both the list file and the image folder exist."""
        return self.list_file(located, split).is_file() and (located.data_dir / self.image_folder).is_dir()

    def read_split(self, located: Located, split: str) -> tuple[ImageRecord, ...]:
        """Records of one split, in list-file order.

        Raises:
            DatasetLayoutError: missing list file or image folder, or malformed lines.
        """
        list_path = self.list_file(located, split)
        if not list_path.is_file():
            raise layout_error(
                f"missing list file {list_path} (the {split} split of {self.display_name}).",
                f"take {self.list_folder}/ from the original archive and put it in {located.data_dir} "
                f"(expected layout: {self.layout.expected_layout}).",
            )
        images = located.data_dir / self.image_folder
        if not images.is_dir():
            raise layout_error(
                f"missing image folder {images} ({self.display_name}).",
                f"unpack the complete archive in {located.data_dir}: {self.image_folder}/ belongs beside "
                f"{self.list_folder}/.",
            )
        return self.records_from(located, list_path)

    def records_from(self, located: Located, list_path: Path) -> tuple[ImageRecord, ...]:
        """The records a list file names."""
        raise NotImplementedError
