"""Dataset names, their aliases, their readers, and :func:`read_dataset`."""

from __future__ import annotations

import difflib
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
from modelzoo.errors import UnknownModelError
from modelzoo.names import DATASET_ALIASES, DATASET_NAMES, dataset_name, normalised

logger = logging.getLogger(__name__)

def canonical_name(name: str) -> str:
    """The canonical dataset name of ``name`` or one of its aliases.

    Args:
        name: e.g. ``market1501``, ``Market-1501``, ``market``, ``duke``,
            ``dukemtmc-reid``, ``msmt``.

    Returns:
        One of :data:`DATASET_NAMES`.

    Raises:
        UnknownModelError: (a ``KeyError``) the name is not a known dataset;
            the message suggests the closest names.
    """
    canonical = dataset_name(name)
    if canonical:
        return canonical
    close = difflib.get_close_matches(normalised(name), list(DATASET_ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(sorted({DATASET_ALIASES[c] for c in close}))}?" if close else ""
    raise UnknownModelError(
        f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)} "
        f"(aliases: market, duke, dukemtmc, msmt).{hint}"
    )


def reader_for(name: str) -> DatasetReader:
    """The reader of dataset ``name`` (aliases accepted)."""
    canonical = canonical_name(name)
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
        UnknownModelError: unknown dataset name.
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
