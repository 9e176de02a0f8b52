"""The three benchmark datasets and the spellings users type for them (one table for the whole package)."""

from __future__ import annotations

import re

DATASET_NAMES = ("market1501", "dukemtmcreid", "msmt17")

# Keys are normalised (lower case, no '-', '_', ' ' or '.'): "Market-1501",
# "market_1501" and "DukeMTMC-reID" all land here.
DATASET_ALIASES = {
    "market1501": "market1501",
    "market": "market1501",
    "dukemtmcreid": "dukemtmcreid",
    "dukemtmc": "dukemtmcreid",
    "duke": "dukemtmcreid",
    "msmt17": "msmt17",
    "msmt": "msmt17",
}


def normalised(name: str) -> str:
    """``"Market-1501"`` -> ``"market1501"``: the form :data:`DATASET_ALIASES` is keyed by."""
    return re.sub(r"[-_ .]", "", str(name).strip().lower())


def dataset_name(name: str) -> str | None:
    """The canonical dataset name for ``name`` or one of its aliases; None when it is none of them."""
    return DATASET_ALIASES.get(normalised(name))
