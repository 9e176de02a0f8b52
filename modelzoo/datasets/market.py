"""Reader for the Market-1501 family of layouts: Market-1501 and DukeMTMC-reID.

Both datasets ship three flat folders of JPEGs -- ``bounding_box_train``,
``query`` and ``bounding_box_test`` (the gallery) -- and encode the identity and
camera in each file name: ``0002_c1s1_000451_03.jpg`` (Market-1501),
``0005_c2_f0046985.jpg`` (DukeMTMC-reID).  One reader, two configurations.

Conventions kept from the datasets (and torchreid):

* pid ``-1`` marks junk detections: dropped.
* pid ``0`` marks Market-1501 distractors: kept in the gallery (they are
  wrong answers the ranking must push down).
* cameras are numbered from 1 in file names and from 0 in records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelzoo.datasets._base import SPLITS, Advice, FixedTestSet, ImageRecord, Located, PathLike, layout_error
from modelzoo.datasets._locate import LayoutSpec, find_data_dir
from modelzoo.errors import DatasetLayoutError

#: Split name -> folder name, shared by both datasets.
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

JUNK_PID = -1
IMAGE_SUFFIX = ".jpg"  # the datasets' only format; torchreid globs "*.jpg" too

# "<pid>_c<camera digit>" at the start of the name; pid may be -1 (junk).
_FILE_NAME = re.compile(r"^(-?\d+)_c(\d)")

# Files listed in a malformed-name error: enough to spot the pattern.
_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class MarketStyleConfig:
    """One dataset in the Market-1501 layout.

    Attributes:
        name: canonical dataset name.
        layout: where it sits on disk.
        num_cameras: cameras are ``c1`` .. ``c<num_cameras>``.
        max_pid: the largest valid pid, or None when the dataset sets no bound.
        example_name: a real file name, quoted in error messages.
        unversioned_note: problem and fix logged when the splits are not inside
            the versioned folder (``{data_dir}`` is filled in); None for a
            dataset without a versioned folder.
        split_folders: split name -> folder name.
        file_name: the pattern of a file name: pid, then the 1-based camera.
    """

    name: str
    layout: LayoutSpec
    num_cameras: int
    max_pid: int | None
    example_name: str
    unversioned_note: Advice | None
    split_folders: Mapping[str, str] = field(default_factory=lambda: SPLIT_FOLDERS)
    file_name: re.Pattern[str] = _FILE_NAME


def _layout(display: str, dataset_dir: str, versioned: str, hint: str, advice: str) -> LayoutSpec:
    folders = ",".join(SPLIT_FOLDERS[split] for split in SPLITS)
    return LayoutSpec(
        display_name=display,
        dataset_dir=dataset_dir,
        versioned_dirs=(versioned,),
        markers=tuple(SPLIT_FOLDERS[split] for split in ("query", "gallery", "train")),
        image_dirs=frozenset(SPLIT_FOLDERS.values()),
        search_hint=hint,
        expected_layout=f"<data_root>/{dataset_dir}/{versioned}/{{{folders}}}/*.jpg",
        obtain_advice=advice,
    )


MARKET1501 = MarketStyleConfig(
    name="market1501",
    layout=_layout(
        "Market-1501",
        "market1501",
        "Market-1501-v15.09.15",
        "market",
        "Market-1501 is distributed as Market-1501-v15.09.15.zip: unzip it inside "
        "<data_root>/market1501/.",
    ),
    num_cameras=6,
    max_pid=1501,
    example_name="0002_c1s1_000451_03.jpg",
    unversioned_note=Advice(
        "Market-1501 found in {data_dir} without the versioned folder "
        "Market-1501-v15.09.15 (the older layout): it is read, but torchreid "
        "calls it deprecated.",
        "move bounding_box_train, query and bounding_box_test into "
        "{data_dir}/Market-1501-v15.09.15/.",
    ),
)

DUKEMTMCREID = MarketStyleConfig(
    name="dukemtmcreid",
    layout=_layout(
        "DukeMTMC-reID",
        "dukemtmc-reid",
        "DukeMTMC-reID",
        "duke",
        "DukeMTMC-reID was withdrawn by its authors in 2019; if you hold a copy "
        "of DukeMTMC-reID.zip, unzip it inside <data_root>/dukemtmc-reid/.",
    ),
    num_cameras=8,
    max_pid=None,
    example_name="0005_c2_f0046985.jpg",
    unversioned_note=Advice(
        "DukeMTMC-reID found in {data_dir}, not in a folder named DukeMTMC-reID: "
        "it is read, but torchreid only looks in <root>/dukemtmc-reid/DukeMTMC-reID/.",
        "move bounding_box_train, query and bounding_box_test into "
        "{data_dir}/DukeMTMC-reID/.",
    ),
)


class MarketStyleReader(FixedTestSet):
    """Reads one Market-1501-style dataset; see :data:`MARKET1501`, :data:`DUKEMTMCREID` (and VeRi-776)."""

    splits: tuple[str, ...] = SPLITS

    def __init__(self, config: MarketStyleConfig) -> None:
        """Bind the reader to one dataset configuration."""
        self.config = config
        self.name = config.name
        self.display_name = config.layout.display_name

    def locate(self, data_root: PathLike) -> Located:
        """Find the folder holding the three split folders.

        Args:
            data_root: torchreid's root, the dataset folder or the versioned folder.

        Returns:
            Where the data is, with a note when the versioned folder is missing.

        Raises:
            DatasetLayoutError: not found, or nested where torchreid would not look.
        """
        data_dir = find_data_dir(self.config.layout, data_root)
        template = self.config.unversioned_note
        if template is None:
            return Located(self.name, data_dir, self.display_name)
        versioned = self.config.layout.versioned_dirs[0]
        if data_dir.name == versioned:
            return Located(self.name, data_dir, versioned)
        note = Advice(
            template.problem.format(data_dir=data_dir), template.fix.format(data_dir=data_dir)
        )
        return Located(self.name, data_dir, f"{self.display_name} (no versioned folder)", (note,))

    def split_source(self, located: Located, split: str) -> str:
        """The folder a split is read from."""
        return str(self.split_folder(located, split))

    def split_folder(self, located: Located, split: str) -> Path:
        """The folder holding the images of ``split``."""
        if split not in self.config.split_folders:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return located.data_dir / self.config.split_folders[split]

    def has_split(self, located: Located, split: str) -> bool:
        """True when the split's folder exists."""
        return self.split_folder(located, split).is_dir()

    def read_split(self, located: Located, split: str) -> tuple[ImageRecord, ...]:
        """Records of one split, sorted by file name, junk (pid -1) dropped.

        Raises:
            DatasetLayoutError: the folder is missing, holds no ``*.jpg``, or
                holds names that do not follow the dataset's scheme.
        """
        folder = self.split_folder(located, split)
        if not folder.is_dir():
            present = ", ".join(sorted(p.name for p in _subfolders(located.data_dir)))
            raise layout_error(
                f"missing folder {folder} (the {split} split of {self.display_name}); "
                f"{located.data_dir} holds: {present or 'no folders'}.",
                f"{', '.join(self.config.split_folders.values())} belong side by side in "
                f"{located.data_dir}: unpack the complete archive there.",
            )
        return read_image_folder(self.config, folder)

    def count_junk(self, located: Located, split: str) -> int:
        """Number of junk images (pid -1) in a split's folder, which the reader drops."""
        folder = self.split_folder(located, split)
        return sum(1 for name in _jpg_names(folder) if name.startswith(f"{JUNK_PID}_"))


def parse_file_name(file_name: str, pattern: re.Pattern[str] = _FILE_NAME) -> tuple[int, int] | None:
    """``(pid, 1-based camera)`` of a file name, or None when it does not match ``<pid>_c<cam>`` (or ``pattern``)."""
    match = pattern.match(file_name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def read_image_folder(config: MarketStyleConfig, folder: Path) -> tuple[ImageRecord, ...]:
    """Parse every ``*.jpg`` of ``folder`` into records (junk dropped), sorted by name.

    Raises:
        DatasetLayoutError: no images, or file names with a bad pattern,
            camera or pid (the message lists a few of them).
    """
    names = sorted(_jpg_names(folder))
    if not names:
        raise layout_error(
            f"no *{IMAGE_SUFFIX} images in {folder}.",
            f"{config.layout.display_name} images are JPEG files named like "
            f"{config.example_name}: unpack the archive again.",
        )
    records: list[ImageRecord] = []
    problems: list[str] = []
    for name in names:
        parsed = parse_file_name(name, config.file_name)
        problem = _name_problem(config, name, parsed)
        if problem is not None:
            problems.append(problem)
        elif parsed is not None and parsed[0] != JUNK_PID:
            pid, camera = parsed
            records.append(ImageRecord(folder / name, pid, camera - 1))
    if problems:
        raise _malformed_error(config, folder, problems)
    return tuple(records)


def _name_problem(
    config: MarketStyleConfig, name: str, parsed: tuple[int, int] | None
) -> str | None:
    """Why a file name is invalid for this dataset, or None when it is fine."""
    if parsed is None:
        return f"{name}: does not start with <pid>_c<camera>"
    pid, camera = parsed
    if not 1 <= camera <= config.num_cameras:
        return f"{name}: camera c{camera} outside c1..c{config.num_cameras}"
    if pid < JUNK_PID or (config.max_pid is not None and pid > config.max_pid):
        upper = config.max_pid if config.max_pid is not None else "any"
        return f"{name}: pid {pid} outside -1..{upper}"
    return None


def _malformed_error(
    config: MarketStyleConfig, folder: Path, problems: list[str]
) -> DatasetLayoutError:
    shown = "".join(f"\n  - {problem}" for problem in problems[:_MAX_EXAMPLES])
    more = len(problems) - _MAX_EXAMPLES
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return layout_error(
        f"{len(problems)} file name(s) in {folder} do not follow the "
        f"{config.layout.display_name} scheme (e.g. {config.example_name}: pid, "
        f"'_c', camera 1-{config.num_cameras}):{shown}{tail}",
        "check that this folder belongs to this dataset (not another one); "
        "remove or rename these files.",
    )


def _jpg_names(folder: Path) -> list[str]:
    """Names of the ``*.jpg`` files in ``folder`` (case-sensitive, like the datasets)."""
    with os.scandir(folder) as entries:
        return [entry.name for entry in entries if entry.name.endswith(IMAGE_SUFFIX)]


def _subfolders(folder: Path) -> list[Path]:
    return [entry for entry in folder.iterdir() if entry.is_dir()]
