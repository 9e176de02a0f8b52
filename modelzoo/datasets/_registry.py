"""Each dataset's reader, and :func:`read_dataset`."""

from __future__ import annotations

import logging

from modelzoo.datasets._base import (
    REQUIRED_SPLITS,
    DatasetReader,
    ImageRecord,
    Located,
    PathLike,
    ReIDSplit,
)
from modelzoo.datasets.market import DUKEMTMCREID, MARKET1501, MarketStyleReader
from modelzoo.datasets.msmt17 import MSMT17Reader
from modelzoo.names import DATASET_NAMES, canonical_dataset

logger = logging.getLogger(__name__)

def reader_for(name: str) -> DatasetReader:
    """The reader of dataset ``name`` (aliases accepted)."""
    canonical = canonical_dataset(name)
    if canonical == "market1501":
        return MarketStyleReader(MARKET1501)
    if canonical == "dukemtmcreid":
        return MarketStyleReader(DUKEMTMCREID)
    return MSMT17Reader()


def read_dataset(name: str, data_root: PathLike) -> ReIDSplit:
    """Read a dataset's query, gallery and train records from its on-disk layout.

    Args:
        name: ``market1501``, ``dukemtmcreid`` or ``msmt17`` (or an alias).
        data_root: torchreid's data root (holding ``market1501/``,
            ``dukemtmc-reid/``, ``msmt17/``), the dataset's own folder, or the
            versioned folder itself (``Market-1501-v15.09.15``, ``MSMT17_V2``).

    Returns:
        The records; ``train`` is empty (with a logged warning) when the
        training part is absent, since evaluation does not need it.

    Raises:
        UnknownDatasetError: unknown dataset name.
        DatasetLayoutError: the layout is wrong; the message says how to fix it.
    """
    reader = reader_for(name)
    located = reader.locate(data_root)
    for note in located.notes:
        logger.warning("%s", note)
    query, gallery = (reader.read_split(located, split) for split in REQUIRED_SPLITS)
    return ReIDSplit(
        name=reader.name,
        root=located.data_dir,
        query=query,
        gallery=gallery,
        train=_read_train(reader, located),
        variant=located.variant,
    )


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
