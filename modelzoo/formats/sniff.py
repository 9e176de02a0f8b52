"""What kind of file is this?  An HTML page, a zip archive, a torch checkpoint or a safetensors file.

Hosts serve pages instead of files (Drive interstitials, captive portals,
error pages with status 200), the QMUL zips hold a checkpoint, and a torch
>= 1.6 checkpoint is itself a zip: this module tells them apart from a
file's first bytes (and, for zips, its member names).  It reads files and
answers; it never touches the network or the cache.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path

from modelzoo.errors import CheckpointFormatError

SNIFF_BYTES = 1024

# First bytes of the pages that hosts serve instead of a file.
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
_MAX_DETAIL = 200

ARCHIVE = "archive"  # a zip archive holding a checkpoint (the QMUL zips)
CHECKPOINT = "checkpoint"  # a torch.save file: a torch zip (>= 1.6) or a legacy pickle
SAFETENSORS = "safetensors"  # a safetensors file (8-byte header length, then a JSON header)


def read_head(path: Path, size: int = SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of a file."""
    with open(path, "rb") as stream:
        return stream.read(size)


def looks_like_html(head: bytes) -> bool:
    """True when the bytes start like an HTML (or XML) page rather than a binary file.

    A byte-order mark and leading whitespace are skipped, as browsers do.

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


def _is_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length followed by a JSON object."""
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= (64 << 20) or head[8:9] != b"{":
        return False
    if length + 8 <= len(head):
        try:
            return isinstance(json.loads(head[8 : 8 + length]), dict)
        except (UnicodeDecodeError, ValueError):
            return False
    return True


def file_kind(path: Path, name: str | None = None) -> str:
    """Classify a complete download as :data:`ARCHIVE`, :data:`CHECKPOINT` or :data:`SAFETENSORS`.

    A ``.pth.tar`` file is *not* a tar archive: it is a plain ``torch.save``
    file whatever its suffix, so tar is never considered.

    Args:
        path: the file.
        name: what to call it in messages (default: its file name).

    Raises:
        CheckpointFormatError: the file is empty, an HTML page, or a broken zip.
    """
    name = name or path.name
    head = read_head(path)
    if not head:
        raise CheckpointFormatError(f"{name} is empty (0 bytes), not a checkpoint")
    if looks_like_html(head):
        page = head.decode("utf-8", "replace")
        raise CheckpointFormatError(
            f"{name} is an HTML page ({html_title(page)!r}), not a checkpoint: "
            "the host served a web page (quota, login, captive portal or error page) instead of the file"
        )
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        return CHECKPOINT if is_torch_zip(_zip_names(path, name)) else ARCHIVE
    if _is_safetensors(head):
        return SAFETENSORS
    return CHECKPOINT


def _zip_names(path: Path, name: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        detail = str(exc) or type(exc).__name__
        raise CheckpointFormatError(
            f"{name} is a damaged zip file ({detail[:_MAX_DETAIL]}); the download is probably truncated"
        ) from exc
