"""Checks on a downloaded file's bytes: hashes, sizes, and what kind of file it is.

Nothing here touches the network or the cache; every function reads a file
(or a few of its first bytes) and answers.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

_HASH_CHUNK = 1 << 20
SNIFF_BYTES = 1024

# First bytes of the pages that hosts serve instead of a file: Drive's
# interstitials, captive portals, error pages answered with status 200.
_HTML_STARTS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<body",
    b"<!--",
    b"<?xml",
    b"<title",
    b"<meta",
    b"<script",
    b"<div",
    b"<p>",
)
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_PICKLE_PROTO = b"\x80"

ARCHIVE = "archive"  # a zip archive holding a checkpoint (the QMUL zips)
CHECKPOINT = "checkpoint"  # a torch.save file: a torch zip (>= 1.6) or a legacy pickle


def sha256_file(path: Path) -> str:
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


def read_head(path: Path, size: int = SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of a file."""
    with open(path, "rb") as stream:
        return stream.read(size)


def looks_like_html(head: bytes) -> bool:
    """True when the bytes start like an HTML (or XML) page rather than a binary file.

    Args:
        head: the first bytes of a file or response body.
    """
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    return text.startswith(_HTML_STARTS)


def html_title(page: str) -> str:
    """The ``<title>`` of an HTML page, or its first words, for error messages."""
    match = re.search(r"<title[^>]*>(.*?)</title>", page, re.IGNORECASE | re.DOTALL)
    text = match.group(1) if match else re.sub(r"<[^>]+>", " ", page)
    text = " ".join(text.split())
    return text[:120] or "(no title)"


def is_torch_zip(names: list[str]) -> bool:
    """True when zip member names are those of a ``torch.save`` file (torch >= 1.6).

    Such a file is a zip holding ``<name>/data.pkl``; it is a checkpoint, not
    an archive to extract.
    """
    return any(name.count("/") == 1 and name.endswith("/data.pkl") for name in names)


def file_kind(path: Path) -> str:
    """Classify a complete download as :data:`ARCHIVE` or :data:`CHECKPOINT`.

    Note that a ``.pth.tar`` file is *not* a tar archive: it is a plain
    ``torch.save`` file whatever its suffix, so tar is never considered.

    Raises:
        CheckpointFormatError: the file is empty, an HTML page, or a broken zip.
    """
    from modelzoo.errors import CheckpointFormatError

    head = read_head(path)
    if not head:
        raise CheckpointFormatError(f"{path.name} is empty (0 bytes), not a checkpoint")
    if looks_like_html(head):
        page = head.decode("utf-8", "replace")
        raise CheckpointFormatError(
            f"{path.name} is an HTML page ({html_title(page)!r}), not a checkpoint: "
            "the host served a web page (quota, login, captive portal or error page) instead of the file"
        )
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointFormatError(
                f"{path.name} is a damaged zip file ({exc}); the download is probably truncated"
            ) from exc
        return CHECKPOINT if is_torch_zip(names) else ARCHIVE
    return CHECKPOINT
