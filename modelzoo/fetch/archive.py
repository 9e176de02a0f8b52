"""Safe extraction of the one weights file from a model-zoo zip.

The QMUL archives hold one folder named like the archive with the weights
file and other files (training log, scripts); see
shared/reference/torchreid-zoo-facts.md 1.6.  Every member name is checked
before anything is written (no absolute paths, no ``..``, no links, no
absurd sizes or compression ratios), then only the weights file is
extracted, streamed into a temporary folder beside the target and checked
against its declared size while it is written.

A ``.pth.tar`` file is a plain ``torch.save`` file, not a tar archive, and a
``torch.save`` file of torch >= 1.6 is itself a zip (``<name>/data.pkl``);
:func:`modelzoo.formats.sniff.file_kind` tells those apart before this module
is used.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelzoo.errors import ArchiveError
from modelzoo.fetch._files import MAX_NAME_BYTES, disk_full, is_disk_full

WEIGHTS_PATTERN = re.compile(r"\.(?:pth|pt|pyth)$|\.pth\.tar(?:-\d+)?$", re.IGNORECASE)
WEIGHTS_GLOBS = "*.pth, *.pth.tar, *.pth.tar-N, *.pt"
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold before it is refused as absurd (a zip bomb)."""

    max_members: int = 10_000
    max_total_bytes: int = 16 << 30  # uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed, for members above ratio_floor
    ratio_floor: int = 1 << 20  # small members may compress well (logs, scripts)


def is_weights_name(name: str) -> bool:
    """True for a file name that looks like a checkpoint (``*.pth``, ``*.pth.tar-60``, ...)."""
    return bool(WEIGHTS_PATTERN.search(name))


def _member_parts(info: zipfile.ZipInfo, archive_name: str) -> tuple[str, ...]:
    """The member's path components, refusing any name that could escape the folder."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"{archive_name}: refused, member {info.filename!r} has an absolute path")
    parts = tuple(part for part in PurePosixPath(name).parts if part not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"{archive_name}: refused, member {info.filename!r} points outside the archive ('..')")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{archive_name}: refused, member {info.filename!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{archive_name}: refused, member {info.filename!r} is encrypted")
    return parts


def _check_sizes(infos: list[zipfile.ZipInfo], archive_name: str, limits: ArchiveLimits) -> None:
    if len(infos) > limits.max_members:
        raise ArchiveError(f"{archive_name}: refused, {len(infos)} members is absurd for a model archive")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise ArchiveError(f"{archive_name}: refused, it would expand to {total} bytes")
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor and ratio > limits.max_ratio:
            raise ArchiveError(f"{archive_name}: refused, member {info.filename!r} expands {ratio:.0f}x (a zip bomb?)")


def _is_junk(parts: tuple[str, ...]) -> bool:
    """macOS resource forks that zip tools add beside real files."""
    return parts[0] == "__MACOSX" or parts[-1].startswith("._")


def _check_member_name(info: zipfile.ZipInfo, leaf: str, archive_name: str) -> None:
    """The extracted file takes the member's last name: it must be a plain name the cache can keep."""
    if len(leaf.encode("utf-8", "replace")) > MAX_NAME_BYTES or "\0" in leaf:
        raise ArchiveError(f"{archive_name}: refused, member {info.filename[:80]!r}... has a name no file system takes")
    if leaf.startswith("."):
        raise ArchiveError(f"{archive_name}: refused, weights member {info.filename[:80]!r} has a hidden name, "
                           "as the cache's own temporary files have")


def _select_weights(archive: zipfile.ZipFile, archive_name: str, limits: ArchiveLimits) -> zipfile.ZipInfo:
    """Check every member, then return the single weights file."""
    infos = archive.infolist()
    candidates = []
    for info in infos:
        parts = _member_parts(info, archive_name)
        if info.is_dir() or not parts or _is_junk(parts):
            continue
        if is_weights_name(parts[-1]):
            _check_member_name(info, parts[-1], archive_name)
            candidates.append(info)
    _check_sizes(infos, archive_name, limits)
    if not candidates:
        listing = ", ".join(info.filename for info in infos[:20]) or "nothing"
        raise ArchiveError(f"{archive_name} holds no weights file ({WEIGHTS_GLOBS}); it holds: {listing}")
    if len(candidates) > 1:
        listing = ", ".join(info.filename for info in candidates)
        raise ArchiveError(
            f"{archive_name} holds several weights files ({listing}) where the zoo expects one; "
            "extract the one you want and register it with `modelzoo import NAME DATASET FILE`"
        )
    return candidates[0]


@dataclass(frozen=True)
class ExtractedWeights:
    """The weights file taken out of an archive."""

    path: Path  # inside the temporary folder given to extract_weights
    member: str  # its name inside the archive


def extract_weights(archive_path: Path, folder: Path, limits: ArchiveLimits | None = None,
                    name: str | None = None) -> ExtractedWeights:
    """Check an archive and extract its single weights file into ``folder``.

    Args:
        archive_path: a zip archive (not a torch zip checkpoint).
        folder: an empty temporary folder beside the cache target; the
            caller renames the result into place and removes the folder.
        limits: size limits; the defaults suit real model archives.
        name: what messages call the archive (default: its file name).

    Returns:
        The extracted file (named like the member, without its folders).

    Raises:
        ArchiveError: an unsafe member, absurd sizes, a damaged archive, or
            not exactly one weights file.
        CacheError: the disk filled up while extracting (the partial file is removed).
    """
    limits = limits or ArchiveLimits()
    name = name or archive_path.name
    try:
        with zipfile.ZipFile(archive_path) as archive:
            info = _select_weights(archive, name, limits)
            target = folder / PurePosixPath(info.filename.replace("\\", "/")).name
            try:
                _copy_member(archive, info, target, name)
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full(folder, info.file_size) from exc
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a bad CRC or deflate stream
        detail = str(exc)[:200] or type(exc).__name__
        raise ArchiveError(f"{name} is a damaged zip archive ({detail}); download it again") from exc
    return ExtractedWeights(path=target, member=info.filename)


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive_name: str) -> None:
    """Stream one member out, refusing it if it is longer than its header says."""
    written = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(_COPY_CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveError(f"{archive_name}: refused, member {info.filename!r} is larger than declared")
            sink.write(chunk)
    if written != info.file_size:
        raise ArchiveError(f"{archive_name}: member {info.filename!r} is shorter than declared (damaged archive)")


def remove_tree(path: Path) -> None:
    """Remove a temporary folder, ignoring one that is already gone."""
    shutil.rmtree(path, ignore_errors=True)
