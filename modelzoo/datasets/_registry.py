"""Each dataset's reader, :func:`read_dataset` and :func:`read_trials`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from modelzoo.datasets._base import DatasetReader, ImageRecord, Located, PathLike, ReIDSplit
from modelzoo.datasets.market import DUKEMTMCREID, MARKET1501, MarketStyleReader
from modelzoo.datasets.msmt17 import MSMT17Reader
from modelzoo.datasets.vehicleid import VehicleIDReader
from modelzoo.datasets.veri import VERI
from modelzoo.datasets.veriwild import VERIWildReader
from modelzoo.errors import UnknownDatasetError
from modelzoo.names import DATASET_NAMES, canonical_dataset, dataset_split

logger = logging.getLogger(__name__)

#: Trials of a dataset whose gallery is drawn at random (VehicleID), unless told otherwise.
DEFAULT_TRIALS = 10


def reader_for(name: str) -> DatasetReader:
    """The reader of dataset ``name`` (aliases accepted)."""
    canonical = canonical_dataset(name)
    readers: dict[str, Callable[[], DatasetReader]] = {
        "market1501": lambda: MarketStyleReader(MARKET1501),
        "dukemtmcreid": lambda: MarketStyleReader(DUKEMTMCREID),
        "msmt17": MSMT17Reader,
        "veri": lambda: MarketStyleReader(VERI),
        "vehicleid": VehicleIDReader,
        "veriwild": VERIWildReader,
    }
    return readers[canonical]()


def has_random_gallery(name: str) -> bool:
    """True for a dataset whose gallery is drawn at random per trial (VehicleID)."""
    return reader_for(name).random_gallery


def read_dataset(name: str, data_root: PathLike, *, split: str | None = None, trial: int | None = None) -> ReIDSplit:
    """Read a dataset's query, gallery and train records from its on-disk layout.

    Args:
        name: ``market1501``, ``dukemtmcreid``, ``msmt17``, ``veri``,
            ``vehicleid`` or ``veriwild`` (or an alias).
        data_root: torchreid's data root (holding ``market1501/``,
            ``dukemtmc-reid/``, ``msmt17/``; fast-reid's ``veri/``,
            ``vehicleid/``, ``VERI-Wild/``), the dataset's own folder, or the
            versioned folder itself (``Market-1501-v15.09.15``, ``MSMT17_V2``).
        split: the test size of VehicleID and VERI-Wild (``small``,
            ``medium``, ``large``); required there, refused elsewhere.
        trial: which random gallery of VehicleID to draw (default 0; see
            :func:`modelzoo.datasets.vehicleid.random_gallery`); refused elsewhere.

    Returns:
        The records; ``train`` is empty (with a logged warning) when the
        training part is absent, since evaluation does not need it.

    Raises:
        UnknownDatasetError: unknown dataset name, or a split or trial the dataset does not have.
        DatasetLayoutError: the layout is wrong; the message says how to fix it.
        ValueError: a trial that is not a whole number >= 0.
    """
    reader = reader_for(name)
    dataset_split(reader.name, split)
    if not reader.random_gallery:
        _refuse_trials(reader, "trial", trial)
        return _read(reader, data_root, split, [None])[0]
    return _read(reader, data_root, split, [_checked_count("trial", 0 if trial is None else trial, minimum=0)])[0]


def planned_trials(name: str, *, split: str | None = None, trials: int | None = None) -> list[int | None]:
    """The trials :func:`read_trials` draws, checked without reading anything.

    Returns:
        ``[None]`` for a dataset with a fixed gallery; ``[0, ..., trials - 1]``
        for one drawn at random (VehicleID; default :data:`DEFAULT_TRIALS`).

    Raises:
        UnknownDatasetError: an unknown dataset, a split it does not have, or
            trials for a dataset with a fixed gallery.
        ValueError: a trial count that is not a whole number >= 1.
    """
    reader = reader_for(name)
    dataset_split(reader.name, split)
    if not reader.random_gallery:
        _refuse_trials(reader, "trials", trials)
        return [None]
    return list(range(_checked_count("trials", DEFAULT_TRIALS if trials is None else trials, minimum=1)))


def read_trials(name: str, data_root: PathLike, *, split: str | None = None, trials: int | None = None) -> list[ReIDSplit]:
    """The test sets an evaluation averages over, reading each file once.

    Args:
        name, data_root, split: as :func:`read_dataset`.
        trials: how many random galleries to draw for a dataset whose gallery
            is drawn at random (VehicleID: trials ``0 .. trials-1``, default
            :data:`DEFAULT_TRIALS`); refused for any other dataset.

    Returns:
        One split per trial; a single one for a dataset with a fixed gallery.

    Raises:
        UnknownDatasetError, DatasetLayoutError: as :func:`read_dataset`.
        ValueError: a trial count that is not a whole number >= 1.
    """
    return _read(reader_for(name), data_root, split, planned_trials(name, split=split, trials=trials))


def _read(reader: DatasetReader, data_root: PathLike, split: str | None, trials: list[int | None]) -> list[ReIDSplit]:
    """One split per trial (None: the fixed gallery), every file read once."""
    size = dataset_split(reader.name, split)
    located = reader.locate(data_root)
    for note in located.notes:
        logger.warning("%s", note)
    records = {test_split: reader.read_split(located, test_split) for test_split in reader.test_splits(size)}
    train = _read_train(reader, located)
    splits = []
    for trial in trials:
        query, gallery = reader.query_and_gallery(records, size, 0 if trial is None else trial)
        splits.append(ReIDSplit(name=reader.name, root=located.data_dir, query=query, gallery=gallery, train=train,
                                variant=located.variant, split=size, trial=trial))
    return splits


def _refuse_trials(reader: DatasetReader, argument: str, value: object) -> None:
    """Raise UnknownDatasetError when ``value`` was given for a dataset with a fixed gallery."""
    if value is not None:
        drawn = ", ".join(name for name in DATASET_NAMES if has_random_gallery(name))
        raise UnknownDatasetError(
            f"{reader.name} has a fixed gallery: {argument}= applies only to datasets whose gallery is drawn "
            f"at random ({drawn}); leave it out"
        )


def _checked_count(argument: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument} must be a whole number >= {minimum}, got {value!r}")
    return value


def _read_train(reader: DatasetReader, located: Located) -> tuple[ImageRecord, ...]:
    """Train records, or () with a warning when the training part is absent."""
    if not reader.has_split(located, "train"):
        logger.warning(
            "%s: no training data at %s; reading query and gallery only "
            "(enough for evaluation).",
            reader.display_name,
            reader.split_source(located, "train"),
        )
        return ()
    return reader.read_split(located, "train")
