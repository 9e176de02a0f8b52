"""Records shared by every dataset reader: one image, one located dataset, one split.

These types carry no behaviour beyond small summaries, so the readers, the
doctor and the evaluation code can all depend on them without depending on
each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Protocol, Union

from modelzoo.errors import DatasetLayoutError

PathLike = Union[str, "os.PathLike[str]"]

#: Splits every reader can return; ``val`` exists only for MSMT17 (list_val.txt).
SPLITS = ("train", "query", "gallery")

#: Splits without which evaluation is impossible.
REQUIRED_SPLITS = ("query", "gallery")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a re-ID dataset.

    Attributes:
        path: absolute path of the image file.
        pid: person identity as given by the dataset (0 = Market-1501 distractor).
        camid: camera index, 0-based (file name ``c1`` -> 0).
    """

    path: Path
    pid: int
    camid: int


@dataclass(frozen=True)
class ReIDSplit:
    """Query, gallery and train records of one dataset read from disk.

    Attributes:
        name: canonical dataset name (``market1501``, ``dukemtmcreid``, ``msmt17``, ...).
        root: the folder that holds the split folders (e.g. ``.../Market-1501-v15.09.15``).
        query: query images, sorted by file name (list-file datasets: in list-file order).
        gallery: gallery images, junk (pid -1) already dropped.
        train: training images with their original pids (empty when the
            training part is absent: evaluation does not need it).
        variant: the layout found, e.g. ``Market-1501-v15.09.15`` or ``MSMT17_V2``.
        split: the test size (``small``, ``medium``, ``large``) of VehicleID
            and VERI-Wild; None for a dataset with one test set.
        trial: which random query/gallery draw this is (VehicleID); None
            for a dataset whose gallery is fixed.
    """

    name: str
    root: Path
    query: tuple[ImageRecord, ...]
    gallery: tuple[ImageRecord, ...]
    train: tuple[ImageRecord, ...] = ()
    variant: str = ""
    split: str | None = None
    trial: int | None = None

    def describe(self) -> str:
        """One line summary: ``market1501 (Market-1501-v15.09.15): 3368 query, ...``."""
        test = "".join(f", {label} {value}" for label, value in (("split", self.split), ("trial", self.trial))
                       if value is not None)
        return (
            f"{self.name} ({self.variant}{test}) at {self.root}: "
            f"{len(self.query)} query / {len(self.gallery)} gallery / "
            f"{len(self.train)} train images"
        )


@dataclass(frozen=True)
class Advice:
    """A layout problem and how to fix it, kept apart so the doctor can show both.

    Attributes:
        problem: what is wrong, with the paths involved.
        fix: what to do about it (a command, a folder to rename, a file to get).
    """

    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}\nFix: {self.fix}"


def layout_error(problem: str, fix: str) -> DatasetLayoutError:
    """A ``DatasetLayoutError`` whose message is ``problem`` then ``Fix: fix``.

    The :class:`Advice` rides along as ``error.advice`` for the doctor.
    """
    advice = Advice(problem, fix)
    error = DatasetLayoutError(str(advice))
    error.advice = advice  # type: ignore[attr-defined]
    return error


def advice_of(error: DatasetLayoutError) -> Advice:
    """The :class:`Advice` of a layout error (any ``DatasetLayoutError`` works)."""
    advice = getattr(error, "advice", None)
    return advice if isinstance(advice, Advice) else Advice(str(error), "")


@dataclass(frozen=True)
class Located:
    """Where a dataset was found on disk, before any image is listed.

    Attributes:
        name: canonical dataset name.
        data_dir: the folder holding the split folders / list files.
        variant: layout name (``Market-1501-v15.09.15``, ``MSMT17_V1``, ...).
        notes: non-fatal deviations from torchreid's layout, each with its fix
            (the reader logs them, the doctor reports them as warnings).
    """

    name: str
    data_dir: Path
    variant: str
    notes: tuple[Advice, ...] = field(default=())


Records = Mapping[str, tuple[ImageRecord, ...]]


class DatasetReader(Protocol):
    """What the doctor and :func:`read_dataset` need from a dataset reader.

    ``splits`` are what the reader can read (folders or list files);
    a *test set* is a query and a gallery built from some of them: one for
    most datasets, one per size of ``test_sizes`` for VehicleID and VERI-Wild,
    and a new random draw per trial where ``random_gallery`` (VehicleID).
    """

    name: str
    display_name: str
    splits: tuple[str, ...]
    required_splits: tuple[str, ...]  # without any of them, evaluation fails
    test_sizes: tuple[str, ...]
    random_gallery: bool

    def locate(self, data_root: PathLike) -> Located:
        """Find the dataset under ``data_root`` or raise ``DatasetLayoutError``."""
        ...

    def split_source(self, located: Located, split: str) -> str:
        """Human-readable place a split is read from (folder or list file)."""
        ...

    def has_split(self, located: Located, split: str) -> bool:
        """True when the split's folder (and list file, if any) exist."""
        ...

    def read_split(self, located: Located, split: str) -> tuple[ImageRecord, ...]:
        """Records of one split, or ``DatasetLayoutError`` when it is missing or malformed."""
        ...

    def test_splits(self, size: str | None) -> tuple[str, ...]:
        """The splits the test set of ``size`` is built from."""
        ...

    def query_and_gallery(
        self, records: Records, size: str | None, trial: int
    ) -> tuple[tuple[ImageRecord, ...], tuple[ImageRecord, ...]]:
        """The query and gallery of one test set, from the records of its :meth:`test_splits`."""
        ...


class FixedTestSet:
    """Reader defaults for a dataset with one test set: the ``query`` and ``gallery`` splits as they are."""

    required_splits: tuple[str, ...] = REQUIRED_SPLITS
    test_sizes: tuple[str, ...] = ()
    random_gallery = False

    def test_splits(self, size: str | None) -> tuple[str, ...]:
        """``("query", "gallery")``."""
        return REQUIRED_SPLITS

    def query_and_gallery(
        self, records: Records, size: str | None, trial: int
    ) -> tuple[tuple[ImageRecord, ...], tuple[ImageRecord, ...]]:
        """The ``query`` and ``gallery`` records."""
        return records["query"], records["gallery"]


def absolute(path: PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute without resolving symlinks.

    Symlinks are kept on purpose: torchreid uses ``os.path.abspath`` too, so
    both produce the same image paths for the same ``root``.
    """
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
