"""Hostile files for the security tests: pickles that run code when loaded unsafely, zips that escape.

These live in the test suite only; ``modelzoo.testing`` writes benign files.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from modelzoo.testing.checkpoints import toy_state_dict


class CallsOnLoad:
    """Pickles as a call ``function(*args)`` run by any unrestricted unpickler."""

    def __init__(self, function, *args) -> None:
        self.function = function
        self.args = args

    def __reduce__(self):
        return (self.function, self.args)


def write_unsafe_checkpoint(path: str | os.PathLike, marker: str | os.PathLike, legacy: bool = False) -> Path:
    """A checkpoint whose pickle runs ``os.system("touch <marker>")`` when loaded unsafely."""
    path = Path(path)
    obj = {"state_dict": toy_state_dict(), "epoch": 1, "payload": CallsOnLoad(os.system, f"touch {marker}")}
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_eval_checkpoint(path: str | os.PathLike, marker: str | os.PathLike) -> Path:
    """A bare-looking checkpoint whose pickle calls ``builtins.eval`` to create ``marker``."""
    path = Path(path)
    code = f"open({str(marker)!r}, 'w').close()"
    torch.save({"w": torch.ones(1), "x": CallsOnLoad(eval, code)}, path)
    return path


def write_zip(path: str | os.PathLike, members: Mapping[str, bytes], symlinks: Mapping[str, str] | None = None) -> Path:
    """A zip with exactly these member names (``../`` and absolute names included) and symlink members."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
        for name, link_target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, link_target)
    return path
