"""The cache folder of one checkpoint, and every file in it.

::

    <cache_dir>/checkpoints/<model>/<key>/
        <weights file>                    the verified weights, as the zoo served them
        <weights file>.safetensors        the canonical state dict (what later loads read)
        record.json                       what is cached: file, size, SHA-256, source
        hashes.json                       hashes trusted for this checkpoint (kept by
                                          `cache clear` unless --forget-hashes)
        .lock                             one lock per checkpoint (filelock)
        <filename>.<source>.incomplete    a resumable partial download
        .fetch-*                          temporary files of the process holding the lock
        compiled/<key>/                   runtime artifacts compiled from these weights

:class:`CheckpointStore` owns all of them: nothing else in the package builds
one of these paths.  A file only reaches its final name through
``os.replace`` of a verified temporary file, and ``record.json`` is written
after it, so a record always describes a complete file.  :meth:`CheckpointStore.load`
is the only way weights are read back; :meth:`CheckpointStore.install` admits a new
file and returns the state dict it read while checking it, so a cold
download reads the file once.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelzoo.errors import ChecksumError
from modelzoo.fetch import archive
from modelzoo.formats import ARCHIVE, CheckpointContent, file_kind, read_checkpoint, sha256_file
from modelzoo.manifest import Checkpoint

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

RECORD = "record.json"
HASHES = "hashes.json"
LOCK = ".lock"
TEMP_PREFIX = ".fetch-"
PARTIAL_SUFFIX = ".incomplete"
COPY_SUFFIX = ".safetensors"
COMPILED = "compiled"
FIRST_DOWNLOAD = "first download"
MANIFEST = "manifest"
_LOCK_NOTICE_AFTER = 1.0  # seconds; then say we are waiting for another process
#: The store's safetensors reader takes the file's little-endian bytes as they
#: are; a big-endian host reads the original weights file every time instead.
_COPIES = sys.byteorder == "little"
#: Bumped when what a copy holds changes, so older copies are rebuilt.
_COPY_VERSION = "2"


@dataclass(frozen=True)
class CacheRecord:
    """What ``record.json`` says about one cached checkpoint."""

    name: str
    weights_file: str
    sha256: str
    size: int
    source: str
    served_sha256: str
    served_format: str
    downloaded_at: str


@dataclass
class TrustedHashes:
    """Hashes a checkpoint's files must match: the manifest's, or those of its first download.

    ``weights_sha256`` is the hash of the ready-to-load weights file; ``served``
    lists the hashes of the files as served (a QMUL zip and the bare Drive copy
    differ as files but hold the same weights).
    """

    weights_sha256: str
    weights_size: int
    origin: str  # "manifest" or "first download"
    first_source: str
    recorded_at: str
    served: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ServedFile:
    """A complete file obtained from one source, not yet trusted."""

    path: Path  # a partial or temporary file in the checkpoint's folder
    source: str  # where it came from, for messages and the record
    name_hint: str | None = None  # the file name the server gave, if any


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A cached checkpoint and what it holds.

    Attributes:
        path: the cached weights file.
        content: its state dict and stored training numbers.
        filled_in_place: True when the values were read straight into the
            caller's tensors (``content.state_dict`` is then those tensors).
    """

    path: Path
    content: CheckpointContent
    filled_in_place: bool = False


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of re-checking one cached checkpoint."""

    name: str
    path: Path
    ok: bool
    problem: str = ""


@dataclass(frozen=True)
class _Served:
    kind: str
    format: str
    sha256: str
    size: int


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class CheckpointStore:
    """The cache folder of one checkpoint: its weights, records, lock, partial downloads and copy.

    Args:
        checkpoint: the manifest entry.
        checkpoints_dir: the cache's ``checkpoints/`` folder (see ``config.FetchSettings``).
    """

    def __init__(self, checkpoint: Checkpoint, checkpoints_dir: Path) -> None:
        self.checkpoint = checkpoint
        self.folder = Path(checkpoints_dir) / checkpoint.model / checkpoint.key

    # -- paths ---------------------------------------------------------------

    def weights_path(self) -> Path | None:
        """The cached weights file when its record and size agree; else None.

        This is cheap (no hashing): files are hashed before they are cached and
        :meth:`verify` hashes them again on demand.
        """
        record = self.read_record()
        if record is None:
            return None
        path = self.folder / record.weights_file
        try:
            return path if path.stat().st_size == record.size else None
        except FileNotFoundError:
            return None

    def partial_path(self, source_key: str) -> Path:
        """The resumable partial file for one source (never mistaken for a checkpoint)."""
        return self.folder / f"{self.checkpoint.filename}.{source_key}{PARTIAL_SUFFIX}"

    def temp_path(self, filename: str) -> Path:
        """A fresh, empty temporary file in the folder, unique to this process (the lock is held).

        Created with the usual permissions (``mkstemp`` would make it private, and
        the cache may be shared between users).
        """
        return unique_temp_file(self.folder, f"{TEMP_PREFIX}{os.getpid()}-", filename)

    def temp_dir(self, purpose: str = "extract") -> Path:
        """A fresh temporary folder in the checkpoint's folder (the lock is held); leftovers are removed later."""
        return Path(tempfile.mkdtemp(dir=self.folder, prefix=f"{TEMP_PREFIX}{os.getpid()}-{purpose}-"))

    def compiled_dir(self, key: str) -> Path:
        """Where a compiled runtime artifact of these weights lives (``compiled/<key>/``, beside them).

        ``key`` names the runtime, its settings and library versions (letters,
        digits, ``.``, ``_`` and ``-``); write the artifact in :meth:`temp_dir`
        under :meth:`locked`, check it, then ``os.replace`` it here.

        Raises:
            ValueError: a key that is not a plain folder name.
        """
        if not key or not all(c.isalnum() or c in "._-" for c in key) or key.startswith("."):
            raise ValueError(f"a compiled artifact's key must be a plain folder name, got {key!r}")
        return self.folder / COMPILED / key

    @staticmethod
    def copy_path(weights: Path) -> Path:
        """Where the canonical safetensors copy of a weights file lives (beside it)."""
        return weights.with_name(weights.name + COPY_SUFFIX)

    # -- the lock --------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the checkpoint's lock (creating its folder).

        Every process that writes a checkpoint's files holds this lock, so N
        processes asking for the same checkpoint download it once.
        """
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / LOCK))
        try:
            lock.acquire(timeout=_LOCK_NOTICE_AFTER)
        except Timeout:
            logger.warning("waiting for another process that is fetching %s (lock %s)",
                           self.checkpoint.name, lock.lock_file)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def remove_leftovers(self) -> None:
        """Delete temporary files of processes that died holding the lock (call with the lock held).

        Every live writer holds the lock, so any ``.fetch-*`` file found then
        belongs to a dead process.
        """
        for path in self.folder.glob(f"{TEMP_PREFIX}*"):
            remove_path(path)

    def remove_partials(self) -> None:
        """Delete every resumable partial download of the checkpoint."""
        for path in self.folder.glob(f"*{PARTIAL_SUFFIX}"):
            remove_path(path)

    # -- records ---------------------------------------------------------------

    def read_record(self) -> CacheRecord | None:
        """The folder's ``record.json``, or None when missing or unreadable."""
        return _read_dataclass(self.folder / RECORD, CacheRecord)

    def read_hashes(self) -> TrustedHashes | None:
        """The folder's trusted hashes, or None before the first verified download."""
        return _read_dataclass(self.folder / HASHES, TrustedHashes)

    def _write_record(self, record: CacheRecord) -> None:
        write_json_atomic(self.folder / RECORD, asdict(record))

    def _write_hashes(self, hashes: TrustedHashes) -> None:
        write_json_atomic(self.folder / HASHES, asdict(hashes))

    # -- admitting a file --------------------------------------------------------

    def install(self, served: ServedFile) -> LoadedCheckpoint:
        """Verify ``served`` and move its weights into place (the caller holds the lock).

        Steps, each of which can refuse the file (and then nothing reaches the cache):

        1. what is it? an HTML page or an empty file is refused; a zip that is
           not a torch checkpoint is an archive;
        2. size and SHA-256 of the file as served, against the manifest when
           the manifest describes a file of that format;
        3. the weights file: extracted from an archive into a temporary folder,
           or the served file itself;
        4. the weights' SHA-256 against the manifest (checkpoint-format
           entries) or, failing that, against the hashes trusted since the
           first download;
        5. the weights are read with ``weights_only=True`` (an unsafe or
           truncated pickle is refused here);
        6. ``os.replace`` into place, then ``record.json``, ``hashes.json``
           and the safetensors copy.

        Args:
            served: a complete file as served by one source; it is consumed
                (moved into place or left for the caller to delete).

        Returns:
            The cached file and the state dict read from it.

        Raises:
            ChecksumError, ArchiveError, CheckpointFormatError,
            UnsafeCheckpointError: the file is refused; nothing was cached.
        """
        info = self._inspect(served)
        trusted = self.read_hashes()
        extract_dir = self.temp_dir() if info.kind == ARCHIVE else None
        try:
            if extract_dir is not None:
                weights = archive.extract_weights(served.path, extract_dir).path
                weights_name, weights_sha = weights.name, sha256_file(weights)
            else:
                weights, weights_name, weights_sha = served.path, self._bare_name(served.name_hint), info.sha256
            origin = self._check_weights(info, weights_sha, trusted)
            content = read_checkpoint(weights, self.checkpoint.layout, **self.checkpoint.reader_options)
            target = self.folder / weights_name
            os.replace(weights, target)
        finally:
            if extract_dir is not None:
                shutil.rmtree(extract_dir, ignore_errors=True)
        self._record(target, served, info, weights_sha, origin, trusted)
        self._write_copy(target, content)
        logger.info("cached %s at %s (sha256 %s, from %s)", self.checkpoint.name, target, weights_sha, served.source)
        return LoadedCheckpoint(target, content)

    def _inspect(self, served: ServedFile) -> _Served:
        """Steps 1-2: the file's kind, hash and size, checked against the manifest."""
        checkpoint = self.checkpoint
        kind = file_kind(served.path)
        fmt = "zip" if kind == ARCHIVE else "checkpoint"
        size = served.path.stat().st_size
        described = fmt == checkpoint.format  # the manifest's size/hash describe a file of its format
        if described and checkpoint.size is not None and size != checkpoint.size:
            raise ChecksumError(
                f"{size} bytes where the manifest says {checkpoint.filename} has {checkpoint.size} "
                "(truncated or wrong file)"
            )
        digest = sha256_file(served.path)
        if described and checkpoint.sha256 and digest != checkpoint.sha256:
            raise ChecksumError(
                f"SHA-256 {digest} differs from the manifest's {checkpoint.sha256} for {checkpoint.filename} "
                "(corrupted or tampered file)"
            )
        return _Served(kind=kind, format=fmt, sha256=digest, size=size)

    def _bare_name(self, hint: str | None) -> str:
        """The cache name of a weights file served bare (not in an archive)."""
        checkpoint = self.checkpoint
        if checkpoint.format == "checkpoint":
            return checkpoint.filename
        safe_hint = hint and Path(hint).name == hint and not hint.startswith(".") and archive.is_weights_name(hint)
        if safe_hint:
            return str(hint)  # e.g. Drive's "resnet50_fc512_market_xent.pth.tar"
        stem = checkpoint.filename[: -len(".zip")] if checkpoint.filename.endswith(".zip") else checkpoint.filename
        return f"{stem}.pth.tar"

    def _check_weights(self, served: _Served, weights_sha: str, trusted: TrustedHashes | None) -> str:
        """Step 4; returns how the weights were verified (``manifest`` or ``first download``)."""
        checkpoint = self.checkpoint
        if checkpoint.sha256 and checkpoint.format == "checkpoint":
            if weights_sha != checkpoint.sha256:
                raise ChecksumError(
                    f"the weights' SHA-256 {weights_sha} differs from the manifest's {checkpoint.sha256} "
                    "(tampered file?)"
                )
            return MANIFEST
        if checkpoint.sha256 and served.format == checkpoint.format:
            return MANIFEST  # the served file matched the manifest in _inspect
        if trusted is not None and weights_sha != trusted.weights_sha256:
            raise ChecksumError(
                f"the weights' SHA-256 {weights_sha[:16]}... differs from {trusted.weights_sha256[:16]}... trusted "
                f"since {checkpoint.name} was first downloaded (from {trusted.first_source}, {trusted.recorded_at}). "
                f"If the zoo really changed the file, forget the old hash with "
                f"`modelzoo cache clear {checkpoint.name} --forget-hashes`"
            )
        return trusted.origin if trusted is not None else FIRST_DOWNLOAD

    def _record(self, target: Path, served: ServedFile, info: _Served, weights_sha: str, origin: str,
                trusted: TrustedHashes | None) -> None:
        """Step 6: record the cached file and the hashes now trusted; drop stale files."""
        previous = self.read_record()
        size = target.stat().st_size
        self._write_record(CacheRecord(
            name=self.checkpoint.name, weights_file=target.name, sha256=weights_sha, size=size,
            source=served.source, served_sha256=info.sha256, served_format=info.format, downloaded_at=_now(),
        ))
        if trusted is None or trusted.weights_sha256 != weights_sha:
            trusted = TrustedHashes(weights_sha256=weights_sha, weights_size=size, origin=origin,
                                    first_source=served.source, recorded_at=_now())
        if not any(entry.get("sha256") == info.sha256 for entry in trusted.served):
            trusted.served.append({"sha256": info.sha256, "size": info.size, "format": info.format,
                                   "source": served.source})
        self._write_hashes(trusted)
        if previous and previous.weights_file != target.name:
            remove_path(self.folder / previous.weights_file)
            remove_path(self.copy_path(self.folder / previous.weights_file))
        remove_path(self.copy_path(target))

    # -- reading ---------------------------------------------------------------

    def load(self) -> LoadedCheckpoint | None:
        """The cached checkpoint's state dict; None when it is not cached.

        The safetensors copy is read when it is current (made from the
        weights file the record names); otherwise the weights file itself is
        read and the copy rebuilt under the lock.

        Raises:
            CheckpointFormatError, UnsafeCheckpointError: the cached weights
                file cannot be read (damaged since it was verified).
        """
        path = self.weights_path()
        if path is None:
            return None
        copied = self._read_copy(path)
        if copied is not None:
            return LoadedCheckpoint(path, copied)
        content = read_checkpoint(path, self.checkpoint.layout, **self.checkpoint.reader_options)
        with self.locked():
            self._write_copy(path, content)
        return LoadedCheckpoint(path, content)

    def read_into(self, targets: Mapping[str, torch.Tensor]) -> bool:
        """Overwrite ``targets`` with the cached values, straight from the safetensors copy.

        Applies only when the copy is current and holds exactly ``targets``'
        names, shapes and dtypes (contiguous CPU tensors); otherwise nothing is
        written and False is returned (the caller then takes :meth:`load`).

        Raises:
            OSError: reading failed half-way; ``targets`` hold a mix of old and
                new values and must be loaded again.
        """
        from modelzoo.errors import SafetensorsFormatError
        from modelzoo.formats.safetensors_file import SafetensorsFile

        path = self.weights_path()
        if not _COPIES or path is None or not self.copy_path(path).is_file():
            return False
        try:
            with SafetensorsFile.open(self.copy_path(path)) as reader:
                if not self._copy_is_current(reader, path) or reader.mismatch(targets) is not None:
                    return False
                try:
                    reader.read_into(targets)
                except (OSError, SafetensorsFormatError) as exc:
                    raise OSError(f"reading {self.copy_path(path)} failed half-way ({exc}); the tensors hold a "
                                  "mix of old and new values: load the weights again") from exc
        except (FileNotFoundError, SafetensorsFormatError, ValueError):
            return False
        return True

    def _stamp(self, weights: Path) -> dict[str, str]:
        """Metadata tying a copy to the exact weights file it came from (its recorded hash)."""
        record = self.read_record()
        return {
            "copy_version": _COPY_VERSION,
            "source_file": weights.name,
            "source_sha256": record.sha256 if record else "",
            "source_size": str(weights.stat().st_size),
        }

    def _copy_is_current(self, reader: Any, weights: Path) -> bool:
        metadata = reader.metadata
        stamp = self._stamp(weights)
        if {key: metadata.get(key) for key in stamp} != stamp:
            logger.info("%s is stale; rebuilding it", Path(reader.path).name)
            return False
        return sorted(json.loads(metadata.get("order", "[]"))) == sorted(reader.keys())

    def _read_copy(self, weights: Path) -> CheckpointContent | None:
        """The copy's content, if the copy is present, readable and made from this very weights file.

        Its tensors are read into this process's own memory, never
        memory-mapped: a map would tie the model to a cache file another
        process may replace, and only defer the reading to the first forward pass.
        """
        from modelzoo.formats.safetensors_file import SafetensorsFile

        copy = self.copy_path(weights)
        if not _COPIES or not copy.is_file():
            return None
        try:
            with SafetensorsFile.open(copy) as reader:
                if not self._copy_is_current(reader, weights):
                    return None
                tensors = reader.read_all()
                metadata = reader.metadata
            order = json.loads(metadata["order"])
            record = json.loads(metadata.get("training_record", "{}"))
            return CheckpointContent({key: tensors[key] for key in order}, _numbers(record))
        except Exception as exc:  # noqa: BLE001 - any damage means "rebuild", never "fail"
            logger.warning("ignoring damaged %s (%s); rebuilding it", copy, exc)
            return None

    def _write_copy(self, weights: Path, content: CheckpointContent) -> None:
        """Store the canonical state dict as safetensors beside ``weights`` (the lock is held).

        The copy is an optimisation: when it cannot be written, loading still
        works from the weights file, and the reason is logged.
        """
        if not _COPIES:
            return
        from modelzoo.formats.safetensors_file import write_safetensors

        target = self.copy_path(weights)
        # safetensors sorts its tensors by name; the original order is kept for display and diffs
        metadata = {"format": "pt", "checkpoint": self.checkpoint.name, "order": json.dumps(list(content.state_dict)),
                    "training_record": json.dumps(content.training_record), **self._stamp(weights)}
        temp = self.temp_path(target.name)
        try:
            write_safetensors(temp, content.state_dict, metadata)
            os.replace(temp, target)
        except (ValueError, TypeError, RuntimeError, OSError) as exc:
            logger.info("not caching %s as safetensors (%s)", weights.name, exc)
        finally:
            remove_path(temp)

    # -- maintenance -------------------------------------------------------------

    def verify(self) -> VerifyResult | None:
        """Hash the cached weights file again and compare it with its record; None when nothing is cached."""
        record = self.read_record()
        if record is None:
            return None
        path = self.folder / record.weights_file
        model, _, key = record.name.partition(".")
        again = f"fetch it again with `modelzoo download {model} {key} --force`"
        if not path.is_file():
            return VerifyResult(record.name, path, False, f"the weights file {path.name} is missing; {again}")
        size = path.stat().st_size
        if size != record.size:
            return VerifyResult(record.name, path, False, f"size {size} bytes, recorded {record.size} (damaged); {again}")
        digest = sha256_file(path)
        if digest != record.sha256:
            return VerifyResult(record.name, path, False, f"SHA-256 {digest[:16]}... differs from the recorded "
                                f"{record.sha256[:16]}... (damaged); {again}")
        return VerifyResult(record.name, path, True)

    def clear(self, forget_hashes: bool = False) -> bool:
        """Delete the cached files and partial downloads; True when anything was removed.

        The hashes trusted since the first download are kept, so a later
        download must match them, unless ``forget_hashes``.  The lock file
        stays: another process may be waiting on it.
        """
        if not self.folder.is_dir():
            return False
        keep = {LOCK} if forget_hashes else {LOCK, HASHES}
        with self.locked():
            doomed = [path for path in self.folder.iterdir() if path.name not in keep]
            for path in doomed:
                remove_path(path)
        return bool(doomed)


def _numbers(record: Any) -> dict[str, int | float]:
    if not isinstance(record, dict):
        return {}
    return {str(k): v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s (%s)", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _read_dataclass(path: Path, kind: type) -> Any:
    """``kind(**json)`` of ``path``; None when missing, unreadable or of other fields (logged)."""
    data = _read_json(path)
    try:
        return kind(**data) if data else None
    except TypeError:
        logger.warning("ignoring %s: unexpected fields", path)
        return None


def unique_temp_file(folder: Path, prefix: str, filename: str) -> Path:
    """A fresh, empty file ``<prefix><random>-<filename>`` in ``folder``, created exclusively."""
    while True:
        path = folder / f"{prefix}{secrets.token_hex(4)}-{filename}"
        try:
            with open(path, "xb"):
                return path
        except FileExistsError:
            continue


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and ``os.replace`` (never half-written)."""
    temp = unique_temp_file(path.parent, f"{TEMP_PREFIX}{os.getpid()}-", path.name)
    try:
        with open(temp, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temp, path)
    finally:
        remove_path(temp)


def remove_path(path: Path) -> None:
    """Remove a file or folder, ignoring one that is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def cached_folders(checkpoints_dir: Path) -> list[Path]:
    """Every checkpoint folder under the cache's ``checkpoints/`` folder, sorted."""
    if not checkpoints_dir.is_dir():
        return []
    return sorted(path for path in checkpoints_dir.glob("*/*") if path.is_dir())

