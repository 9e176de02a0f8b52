"""Careful file operations for the cache: names that cannot escape, opens that never follow links.

A cache folder may be shared between users, and its files are written by
downloads whose names and sizes come from servers and archives.  These
helpers are where that care lives, so the store and the HTTP layer use the
same rules:

* a name read from a record or chosen by a server is used only when it is a
  plain file name (no separators, no NUL, no leading dot, at most 255 bytes);
* files are created with ``O_EXCL`` or ``O_NOFOLLOW``, so a planted symbolic
  link is never written through, and a partial download is resumed only
  when it is a regular file owned by this user;
* a full disk or an unwritable folder becomes one :class:`~modelzoo.errors.CacheError`
  line naming the folder and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from modelzoo.errors import CacheError

MAX_NAME_BYTES = 255  # the longest file name Linux, macOS and Windows file systems take
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def is_plain_name(name: object) -> bool:
    """True for a file name that names a file in its folder and nothing else."""
    if not isinstance(name, str) or not name or name.startswith("."):
        return False
    if any(c in name for c in ("/", "\\", "\0")) or name != name.strip():
        return False
    try:
        return len(name.encode("utf-8")) <= MAX_NAME_BYTES
    except UnicodeEncodeError:
        return False


def is_regular_file(path: Path) -> bool:
    """True when ``path`` itself (not what a link points to) is a regular file."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def owned_by_this_user(path: Path) -> bool:
    """True when ``path`` belongs to the current user (always, where the OS has no user ids)."""
    if not hasattr(os, "getuid"):
        return True
    try:
        return path.lstat().st_uid == os.getuid()
    except OSError:
        return False


def unique_temp_file(folder: Path, prefix: str, filename: str) -> Path:
    """A fresh, empty file ``<prefix><random>-<filename>`` in ``folder``, created exclusively.

    ``O_EXCL`` refuses any existing name, links included.  The file gets the
    usual permissions (``mkstemp`` would make it private, and the cache may be
    shared between users).

    Raises:
        CacheError: the folder is unwritable or full.
    """
    while True:
        name = f"{prefix}{secrets.token_hex(4)}-{filename}"
        path = folder / name.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore")  # the prefix is kept
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666))
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise folder_error(folder, exc) from exc


def open_partial(path: Path, *, append: bool) -> BinaryIO:
    """Open a partial download for writing without following a link (``O_NOFOLLOW``).

    Raises:
        CacheError: ``path`` is a link, or the folder is unwritable or full.
    """
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        return os.fdopen(os.open(path, flags, 0o666), "ab" if append else "wb")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CacheError(f"{path} is a symbolic link, not a partial download: remove it") from exc
        raise folder_error(path.parent, exc) from exc


def resumable_size(path: Path) -> int:
    """Bytes of a partial download worth resuming; 0 (after removing it) for anything else.

    Only a regular file owned by this user is resumed: a link or someone
    else's file planted under the predictable name is removed (the link
    itself, never its target) and the download starts from zero.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return 0
    if stat.S_ISREG(info.st_mode) and owned_by_this_user(path):
        return info.st_size
    remove_path(path)
    return 0


def write_json_atomic(path: Path, data: dict, prefix: str) -> None:
    """Write JSON through a temporary file and ``os.replace`` (never half-written).

    Raises:
        CacheError: the folder is unwritable or full (nothing is changed).
    """
    temp = unique_temp_file(path.parent, prefix, path.name)
    try:
        with open(temp, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temp, path)
    except OSError as exc:
        raise folder_error(path.parent, exc) from exc
    finally:
        remove_path(temp)


def remove_path(path: Path) -> None:
    """Remove a file, a link (never its target) or a folder, ignoring one that is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk (or an exhausted quota) raises."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def disk_full(folder: Path, needed_bytes: int | None) -> CacheError:
    """The one-line error for a full disk, naming the folder and how much room the file needs."""
    need = f": need about {_human(needed_bytes)}" if needed_bytes else ""
    return CacheError(f"no space left on {folder}{need}; free some space or point MODELZOO_HOME "
                      "(or cache_dir=) at a larger disk")


def _human(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def folder_error(folder: Path, exc: OSError) -> CacheError:
    """A one-line error for a cache folder that cannot be written, naming it and the fix."""
    if is_disk_full(exc):
        return disk_full(folder, None)
    reason = exc.strerror or type(exc).__name__
    return CacheError(f"cannot write to the cache folder {folder} ({reason}); point MODELZOO_HOME "
                      "(or cache_dir=) at a writable folder")


def make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) or raise one line saying why and what to do.

    Raises:
        CacheError: a parent is a file, or the folder cannot be created.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise CacheError(f"cannot create the cache folder {folder}: a parent of it is a file, not a folder; "
                         "point MODELZOO_HOME (or cache_dir=) at a folder") from exc
    except OSError as exc:
        raise folder_error(folder, exc) from exc
