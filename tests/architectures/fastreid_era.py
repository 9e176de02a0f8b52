"""Shared by ``scripts/make_fastreid_era_data.py`` and the fast-reid tests: weights by key name, inputs, data files.

The era-parity data (``tests/data/fastreid_era/``) was made by running
fast-reid's own v0.1.1 / v1.0.0 modeling code on weights and inputs that are
regenerated here from seeds, so the data holds no weights: every tensor of a
file-layout key is drawn from a generator seeded by the seed and the key's
name (CRC-32), with the statistics of ``modelzoo.testing.weights``; only
``pixel_mean`` / ``pixel_std`` keep fast-reid's values.  Keys that name one
shared tensor in the era's network (MGN's 8 ``bX_pool.0.p``) all take the
first key's tensor.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch

from modelzoo.testing.weights import tensor_for

DATA = Path(__file__).resolve().parent.parent / "data" / "fastreid_era"
# fast-reid's PIXEL_MEAN / PIXEL_STD: the oracle's input is 0..255, ours is normalised.
PIXEL_MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
PIXEL_STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
DTYPES = {"float32": torch.float32, "int64": torch.int64}

Layout = Sequence[tuple[str, Sequence[int], str]]  # (key, shape, dtype name)


# The non-local response is cubic in its input (theta * phi * g); with random weights a stack of
# blocks overflows unless their output BN (``NL_k.i.W.1``) has a small gain.
NON_LOCAL_OUTPUT_GAIN = re.compile(r"\.NL_\d+\.\d+\.W\.1\.weight$")
NON_LOCAL_GAIN = 0.02


def tensor_named(key: str, shape: Sequence[int], dtype: str, seed: int) -> torch.Tensor:
    """The deterministic tensor of ``key``: depends only on the key's name, its shape, dtype and ``seed``."""
    generator = torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(key.encode()))
    tensor = tensor_for(key, torch.empty(tuple(shape), dtype=DTYPES[dtype]), generator)
    return tensor * NON_LOCAL_GAIN if NON_LOCAL_OUTPUT_GAIN.search(key) else tensor


def file_weights(layout: Layout, seed: int, shared: Iterable[Sequence[str]] = ()) -> dict[str, torch.Tensor]:
    """A full file state dict for ``layout``, every tensor drawn by key name except the normalisation.

    ``pixel_mean`` / ``pixel_std`` keep fast-reid's config values (they
    normalise the input); each group in ``shared`` gets its first key's tensor.
    """
    pixel = {"pixel_mean": PIXEL_MEAN, "pixel_std": PIXEL_STD}
    state = {
        key: pixel[key].clone() if key in pixel else tensor_named(key, shape, dtype, seed)
        for key, shape, dtype in layout
    }
    for group in shared:
        for key in group[1:]:
            state[key] = state[group[0]]
    return state


def oracle_images(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """Seeded images on fast-reid's 0..255 scale."""
    return torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed)) * 255.0


def normalised(images_255: torch.Tensor) -> torch.Tensor:
    """The same images as our networks take them: ``(x - 255 m) / (255 s)`` == ``(x / 255 - m) / s``."""
    return (images_255 - PIXEL_MEAN) / PIXEL_STD


def layout_of(state: Mapping[str, torch.Tensor]) -> list[tuple[str, list[int], str]]:
    """``(key, shape, dtype)`` of every entry of a state dict, in its order."""
    return [(key, list(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state.items()]


def encode_layout(layout: Layout) -> list[str]:
    """One line per key for the JSON file: ``"backbone.conv1.weight [64,3,7,7] float32"``."""
    return [f"{key} {json.dumps(list(shape), separators=(',', ':'))} {dtype}" for key, shape, dtype in layout]


def decode_layout(lines: Iterable[str]) -> list[tuple[str, list[int], str]]:
    """The inverse of :func:`encode_layout`."""
    entries = (line.split(" ") for line in lines)
    return [(key, json.loads(shape), dtype) for key, shape, dtype in entries]


def shared_groups(state: Mapping[str, torch.Tensor]) -> list[list[str]]:
    """Groups of keys whose tensors are one tensor (same storage), in state-dict order."""
    groups: dict[tuple[int, int], list[str]] = {}
    for key, value in state.items():
        groups.setdefault((value.untyped_storage().data_ptr(), value.storage_offset()), []).append(key)
    return [keys for keys in groups.values() if len(keys) > 1]


@cache
def era_records(era: str) -> dict:
    """The stored description of each configuration run with fast-reid's ``era`` code."""
    return json.loads((DATA / f"v{era}.json").read_text())


@cache
def era_outputs(era: str) -> dict[str, np.ndarray]:
    """The stored outputs of fast-reid's ``era`` code, ``"<config>/<output>"`` -> array."""
    with np.load(DATA / f"v{era}.npz") as data:
        return {name: data[name] for name in data.files}


def stored_eras() -> list[str]:
    """The eras with stored data (``v0.1.1``, ``v1.0``)."""
    return sorted(path.stem.removeprefix("v") for path in DATA.glob("v*.json"))


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """``max |ours - theirs| / max |theirs|``; the reference must be finite and not all zeros."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert torch.isfinite(theirs).all() and theirs.abs().max() > 0, "reference output degenerate: weights too wild"
    return float((ours - theirs).abs().max() / theirs.abs().max())
