"""The datasets the package knows and the spellings users type for them (one table for the whole package).

:func:`dataset_key` is the one normaliser of dataset names: every part of the
package (manifest lookups, dataset readers, the command line) goes through it.
"""

from __future__ import annotations

import difflib
import re

from modelzoo.errors import UnknownDatasetError

DATASET_NAMES = ("market1501", "dukemtmcreid", "msmt17", "veri", "vehicleid", "veriwild")

#: Datasets published at several test sizes, and the names of those sizes
#: (VehicleID: test_list_800/1600/2400.txt; VERI-Wild: test_3000/5000/10000).
DATASET_SPLITS: dict[str, tuple[str, ...]] = {
    "vehicleid": ("small", "medium", "large"),
    "veriwild": ("small", "medium", "large"),
}

# Keys are squashed (lower case, no '-', '_', ' ' or '.'): "Market-1501",
# "market_1501" and "DukeMTMC-reID" all land here.
DATASET_ALIASES = {
    "market1501": "market1501",
    "market": "market1501",
    "dukemtmcreid": "dukemtmcreid",
    "dukemtmc": "dukemtmcreid",
    "duke": "dukemtmcreid",
    "msmt17": "msmt17",
    "msmt": "msmt17",
    "veri": "veri",
    "veri776": "veri",
    "vehicleid": "vehicleid",
    "veriwild": "veriwild",
}


def _squashed(name: str) -> str:
    return re.sub(r"[-_ .]", "", str(name).strip().lower())


def dataset_key(name: str) -> str:
    """The canonical spelling of a dataset or checkpoint key.

    A dataset alias becomes the dataset's name (``"Market-1501"``, ``"market"``
    -> ``"market1501"``); any other key is only trimmed and lower-cased
    (``"msmt17_combineall"``, ``"imagenet"``), so checkpoint keys that are not
    datasets pass through.
    """
    return DATASET_ALIASES.get(_squashed(name), str(name).strip().lower())


def canonical_dataset(name: str) -> str:
    """The name of a dataset the package reads, from any of its spellings.

    Raises:
        UnknownDatasetError: ``name`` is no known dataset; the message
            suggests the closest names.
    """
    key = dataset_key(name)
    if key in DATASET_NAMES:
        return key
    close = difflib.get_close_matches(_squashed(name), list(DATASET_ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(sorted({DATASET_ALIASES[c] for c in close}))}?" if close else ""
    raise UnknownDatasetError(
        f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)} "
        f"(aliases: market, duke, dukemtmc, msmt, veri776, vehicle-id, veri-wild).{hint}"
    )


def dataset_split(dataset: str, split: str | None) -> str | None:
    """``split`` checked against the test sizes of ``dataset`` (a canonical name).

    Args:
        dataset: a name of :data:`DATASET_NAMES`.
        split: ``"small"``, ``"medium"`` or ``"large"`` for a dataset of
            :data:`DATASET_SPLITS`; None for any other dataset.

    Raises:
        UnknownDatasetError: a split for a dataset that has none, no split for
            one that has several, or a split it does not have.
    """
    sizes = DATASET_SPLITS.get(dataset, ())
    if not sizes:
        if split is not None:
            raise UnknownDatasetError(f"{dataset} has a single test set: leave out the split ({split!r})")
        return None
    choose = f"pass split= (--split on the command line): one of {', '.join(sizes)}"
    if split is None:
        raise UnknownDatasetError(f"{dataset} is tested at {len(sizes)} sizes: {choose}")
    if split not in sizes:
        raise UnknownDatasetError(f"{dataset} has no split {split!r}: {choose}")
    return split
