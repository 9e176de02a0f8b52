"""Hashes of files and of the weights they hold: what the cache records and a manifest may pin."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_HASH_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Args:
        path: the file to hash.

    Returns:
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_sha256(text: object) -> bool:
    """True for 64 lowercase hex digits."""
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def weights_fingerprint(state_dict: Mapping[str, "torch.Tensor"]) -> str:
    """SHA-256 of a state dict's canonical content: the same for the same weights in any container.

    The QMUL zip, the bare ``.pth.tar`` it holds on Google Drive and a copy
    re-saved on the Hub differ as files but hold the same weights; this hash
    tells them apart from other weights.  Tensors are taken in sorted key
    order; each contributes one line of JSON ``[name, dtype, shape, number of
    bytes]`` and then its raw little-endian, C-contiguous bytes.  A
    ``module.`` prefix is already gone from the state dicts the format layer
    returns, so it does not change the fingerprint either.

    Args:
        state_dict: names mapped to tensors (CPU or not; any dtype).

    Returns:
        64 lowercase hex digits.
    """
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        if sys.byteorder == "big" and tensor.element_size() > 1:
            raw = tensor.reshape(-1).numpy().byteswap().tobytes()
        header = [name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), len(raw)]
        digest.update(json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n")
        digest.update(raw)
    return digest.hexdigest()
