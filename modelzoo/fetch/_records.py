"""The cache's own records, ``record.json`` and ``hashes.json``: read as untrusted data, written atomically.

A record is the cache's memory of what it verified, but the folder may have
been copied, edited or damaged since: every field is type-checked when read,
and a path in it is used only when it names a regular file inside the
checkpoint's folder.  A damaged ``record.json`` means "not cached" (fetch
again); a damaged ``hashes.json`` stops the download, because silently
forgetting the trusted hash would trust whatever comes next.
"""

from __future__ import annotations

import json
import logging
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from modelzoo.errors import CacheError
from modelzoo.fetch._files import is_plain_name, is_regular_file, write_json_atomic
from modelzoo.formats.digest import is_sha256

logger = logging.getLogger(__name__)

RECORD = "record.json"
HASHES = "hashes.json"
_MAX_RECORD_BYTES = 1 << 20  # a record is a few hundred bytes; anything near this is not one

Record = TypeVar("Record")


@dataclass(frozen=True)
class CacheRecord:
    """What ``record.json`` says about one cached checkpoint.

    Attributes:
        copy_sha256: SHA-256 of the safetensors copy when it was written ("" before).
        fingerprint: the weights fingerprint (``formats.weights_fingerprint``), the same
            for the same weights in any container ("" in records of earlier releases).
    """

    name: str
    weights_file: str
    sha256: str
    size: int
    source: str
    served_sha256: str
    served_format: str
    downloaded_at: str
    copy_sha256: str = ""
    fingerprint: str = ""


@dataclass
class TrustedHashes:
    """Hashes a checkpoint's files must match: the manifest's, or those of its first download.

    ``weights_sha256`` is the hash of the ready-to-load weights file; ``served``
    lists the hashes of the files as served (a QMUL zip and the bare Drive copy
    differ as files but hold the same weights); ``fingerprint`` is the hash of
    the weights themselves, which every later download must match, whatever its
    container ("" in trust files of earlier releases: then the file hash is compared).
    """

    weights_sha256: str
    weights_size: int
    origin: str  # "manifest" or "first download"
    first_source: str
    recorded_at: str
    served: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str = ""


def _load_json(path: Path) -> Any:
    """The JSON value in ``path``; None when the file does not exist.

    Raises:
        ValueError: unreadable, too large, or not JSON.
    """
    try:
        if path.lstat().st_size > _MAX_RECORD_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes")
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)[:200] or type(exc).__name__) from exc


def _typed(data: Any, kind: type[Record], checks: dict[str, Any]) -> Record:
    """``kind(**data)`` when ``data`` has exactly ``kind``'s fields, each of the right type.

    Raises:
        ValueError: another shape, naming the first field that is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    known = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    required = {f.name for f in fields(kind)  # type: ignore[arg-type]
                if f.default is MISSING and f.default_factory is MISSING}
    unknown, missing = sorted(set(data) - known), sorted(required - set(data))
    if unknown or missing:
        raise ValueError(f"unknown field {unknown[0]!r}" if unknown else f"missing field {missing[0]!r}")
    for name, check in checks.items():
        if name in data and not check(data[name]):
            raise ValueError(f"field {name!r} holds {str(data[name])[:80]!r}")
    return kind(**data)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_RECORD_CHECKS = {
    "name": _is_text, "weights_file": is_plain_name, "sha256": is_sha256, "size": _is_count,
    "source": _is_text, "served_sha256": is_sha256, "served_format": _is_text, "downloaded_at": _is_text,
    "copy_sha256": lambda v: v == "" or is_sha256(v), "fingerprint": lambda v: v == "" or is_sha256(v),
}
_HASHES_CHECKS = {
    "weights_sha256": is_sha256, "weights_size": _is_count, "origin": _is_text, "first_source": _is_text,
    "recorded_at": _is_text,
    "served": lambda v: isinstance(v, list) and all(isinstance(e, dict) and is_sha256(e.get("sha256")) for e in v),
    "fingerprint": lambda v: v == "" or is_sha256(v),
}


def read_record(folder: Path) -> CacheRecord | None:
    """The folder's ``record.json`` when it is well formed and names a regular file in the folder.

    A missing record is None; a damaged one (wrong shape, a path that is not
    a plain name, a link or a missing file) is None too, with a warning: the
    checkpoint is fetched again, and nothing the record names is used or deleted.
    """
    path = folder / RECORD
    try:
        data = _load_json(path)
        if data is None:
            return None
        record = _typed(data, CacheRecord, _RECORD_CHECKS)
    except ValueError as exc:
        logger.warning("ignoring the damaged cache record %s (%s); the checkpoint will be fetched again", path, exc)
        return None
    if not is_regular_file(folder / record.weights_file):
        logger.info("%s names %s, which is not a regular file there; the checkpoint will be fetched again",
                    path, record.weights_file)
        return None
    return record


def read_hashes(folder: Path, checkpoint_name: str) -> TrustedHashes | None:
    """The hashes trusted for the checkpoint, or None before its first verified download.

    Raises:
        CacheError: ``hashes.json`` is damaged; it is not silently forgotten
            (that would trust whatever file comes next), so the message names
            the command that resets it on purpose.
    """
    path = folder / HASHES
    try:
        data = _load_json(path)
        return None if data is None else _typed(data, TrustedHashes, _HASHES_CHECKS)
    except ValueError as exc:
        raise CacheError(
            f"the trusted hashes of {checkpoint_name} in {path} are damaged ({exc}); nothing was downloaded. "
            f"To trust the next download again on purpose, run `modelzoo cache clear {checkpoint_name} "
            "--forget-hashes`"
        ) from None


def write_record(folder: Path, record: CacheRecord, temp_prefix: str) -> None:
    """Write ``record.json`` atomically."""
    write_json_atomic(folder / RECORD, asdict(record), temp_prefix)


def write_hashes(folder: Path, hashes: TrustedHashes, temp_prefix: str) -> None:
    """Write ``hashes.json`` atomically."""
    write_json_atomic(folder / HASHES, asdict(hashes), temp_prefix)
