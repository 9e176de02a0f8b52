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
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from modelzoo.errors import CacheError, CheckpointFormatError, ChecksumError
from modelzoo.fetch import _copies, archive
from modelzoo.fetch._files import (
    folder_error,
    is_plain_name,
    is_regular_file,
    make_folder,
    remove_path,
    unique_temp_file,
)
from modelzoo.fetch._records import (
    HASHES,
    CacheRecord,
    TrustedHashes,
    read_hashes,
    read_record,
    write_hashes,
    write_record,
)
from modelzoo.formats import ARCHIVE, CheckpointContent, file_kind, read_checkpoint, sha256_file, weights_fingerprint
from modelzoo.manifest import Checkpoint

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

LOCK = ".lock"
LOCK_OWNER = ".lock.owner"
TEMP_PREFIX = ".fetch-"
_LEGACY_TEMP_PREFIX = ".tmp-"  # the safetensors temporaries of earlier releases
PARTIAL_SUFFIX = ".incomplete"
COPY_SUFFIX = _copies.COPY_SUFFIX
COMPILED = "compiled"
FIRST_DOWNLOAD = "first download"
MANIFEST = "manifest"
DEFAULT_LOCK_TIMEOUT = 600.0
_LOCK_NOTICE_AFTER = 1.0  # seconds; then say we are waiting for another process

#: A check of a state dict before its file is trusted (the model factory checks it fits the architecture).
StateCheck = Callable[[Checkpoint, Mapping[str, "torch.Tensor"]], None]

__all__ = ["CacheRecord", "CheckpointStore", "LoadedCheckpoint", "ServedFile", "StateCheck", "TrustedHashes",
           "VerifyResult", "cached_folders", "remove_path", "unique_temp_file"]


@dataclass(frozen=True)
class ServedFile:
    """A complete file obtained from one source, not yet trusted."""

    path: Path  # a partial or temporary file in the checkpoint's folder
    source: str  # where it came from, for messages and the record
    name_hint: str | None = None  # the file name the server gave, if any
    label: str = ""  # what messages call the file (the user's own file name for an import)
    sha256: str | None = None  # this source's file, where the manifest knows it
    size: int | None = None


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
    """The outcome of re-checking one cached checkpoint.

    Attributes:
        ok: the weights file still has its recorded size and hash.
        problem: what is wrong, and the command that fixes it.
        repaired: what was repaired on the way (a damaged safetensors copy rebuilt).
    """

    name: str
    path: Path
    ok: bool
    problem: str = ""
    repaired: str = ""


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
        lock_timeout: seconds to wait for another process holding the lock.
    """

    def __init__(self, checkpoint: Checkpoint, checkpoints_dir: Path, *,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.checkpoint = checkpoint
        self.folder = Path(checkpoints_dir) / checkpoint.model / checkpoint.key
        self.lock_timeout = lock_timeout

    # -- paths ---------------------------------------------------------------

    def weights_path(self) -> Path | None:
        """The cached weights file when a well-formed record names it and the size agrees; else None.

        This is cheap (no hashing): files are hashed before they are cached and
        :meth:`verify` hashes them again on demand.  A record that names
        anything but a regular file in this folder counts as no record.
        """
        cached = self._cached()
        return cached[0] if cached is not None else None

    def _cached(self) -> tuple[Path, CacheRecord] | None:
        """The weights file and the record that names it, when the two agree (one read of the record)."""
        record = self.read_record()
        if record is None:
            return None
        path = self.folder / record.weights_file
        try:
            return (path, record) if path.lstat().st_size == record.size else None
        except FileNotFoundError:
            return None

    def partial_path(self, source_key: str) -> Path:
        """The resumable partial file for one source (never mistaken for a checkpoint)."""
        return self.folder / f"{self.checkpoint.filename}.{source_key}{PARTIAL_SUFFIX}"

    @staticmethod
    def resume_record_path(partial: Path) -> Path:
        """Beside a partial download: the validators (ETag, Last-Modified) of the response it holds."""
        return partial.with_name(partial.name + ".json")

    def temp_path(self, filename: str) -> Path:
        """A fresh, empty temporary file in the folder, unique to this process (the lock is held).

        Created exclusively, never through a link, with the usual permissions
        (the cache may be shared between users).
        """
        return unique_temp_file(self.folder, f"{TEMP_PREFIX}{os.getpid()}-", filename)

    def temp_dir(self, purpose: str = "extract") -> Path:
        """A fresh temporary folder in the checkpoint's folder (the lock is held); leftovers are removed later."""
        try:
            return Path(tempfile.mkdtemp(dir=self.folder, prefix=f"{TEMP_PREFIX}{os.getpid()}-{purpose}-"))
        except OSError as exc:
            raise folder_error(self.folder, exc) from exc

    def compiled_dir(self, key: str) -> Path:
        """Where a compiled runtime artifact of these weights lives (``compiled/<key>/``, beside them).

        ``key`` names the runtime, its settings and library versions (letters,
        digits, ``.``, ``_`` and ``-``); write the artifact in :meth:`temp_dir`
        under :meth:`locked`, check it, then ``os.replace`` it here.

        Raises:
            ValueError: a key that is not a plain folder name.
        """
        if not is_plain_name(key) or not all(c.isalnum() or c in "._-" for c in key):
            raise ValueError(f"a compiled artifact's key must be a plain folder name, got {key!r}")
        return self.folder / COMPILED / key

    @contextlib.contextmanager
    def building_compiled(self, key: str) -> Iterator[Path]:
        """A temporary folder to build an artifact in (the lock is held); kept as ``compiled/<key>/`` on success.

        If the block raises, the folder and everything in it are deleted and
        nothing reaches ``compiled/``.

        Raises:
            CacheError: the folder cannot be written.
        """
        target = self.compiled_dir(key)
        built = self.temp_dir("compile")
        try:
            yield built
            make_folder(target.parent)
            remove_path(target)
            try:
                os.replace(built, target)
            except OSError as exc:
                raise folder_error(target.parent, exc) from exc
        finally:
            remove_path(built)

    def remove_compiled(self, key: str) -> None:
        """Delete ``compiled/<key>/`` (the lock is held): an artifact that failed its check."""
        remove_path(self.compiled_dir(key))

    @staticmethod
    def copy_path(weights: Path) -> Path:
        """Where the canonical safetensors copy of a weights file lives (beside it)."""
        return _copies.copy_path(weights)

    # -- the lock --------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the checkpoint's lock (creating its folder).

        Every process that writes a checkpoint's files holds this lock, so N
        processes asking for the same checkpoint download it once.  A process
        that waits says who holds the lock, and gives up after
        ``lock_timeout`` seconds.

        Raises:
            CacheError: the folder cannot be created or locked, or the lock
                was held longer than ``lock_timeout``.
        """
        from filelock import FileLock, Timeout

        make_folder(self.folder)
        lock = FileLock(str(self.folder / LOCK))
        try:
            try:
                lock.acquire(timeout=min(_LOCK_NOTICE_AFTER, self.lock_timeout))
            except Timeout:
                logger.warning("waiting for another process fetching %s: %s", self.checkpoint.name, self._holder())
                lock.acquire(timeout=max(0.0, self.lock_timeout - _LOCK_NOTICE_AFTER))
        except Timeout:
            raise CacheError(
                f"gave up after {self.lock_timeout:.0f} s waiting for the lock of {self.checkpoint.name} "
                f"({self.folder / LOCK}), held by {self._holder()}; wait for it, or raise MODELZOO_LOCK_TIMEOUT"
            ) from None
        except OSError as exc:
            raise folder_error(self.folder, exc) from exc
        try:
            self._write_holder()
            yield
        finally:
            remove_path(self.folder / LOCK_OWNER)
            lock.release()

    def _write_holder(self) -> None:
        """Say who holds the lock, for the processes that wait (best effort)."""
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        with contextlib.suppress(OSError, CacheError):
            path = self.temp_path(LOCK_OWNER)
            path.write_text(json.dumps(owner), encoding="utf-8")
            os.replace(path, self.folder / LOCK_OWNER)

    def _holder(self) -> str:
        try:
            owner = json.loads((self.folder / LOCK_OWNER).read_text(encoding="utf-8"))
            return f"process {int(owner['pid'])} on {str(owner['host'])[:64]} since {str(owner['since'])[:32]}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def remove_leftovers(self) -> None:
        """Delete temporary files of processes that died holding the lock (call with the lock held).

        Every live writer holds the lock, so any ``.fetch-*`` file found then
        belongs to a dead process (``.tmp-*``: the copies of earlier releases).
        """
        for prefix in (TEMP_PREFIX, _LEGACY_TEMP_PREFIX):
            for path in self.folder.glob(f"{prefix}*"):
                remove_path(path)

    def remove_partials(self) -> None:
        """Delete every resumable partial download of the checkpoint (and what is kept beside them)."""
        for path in self.folder.glob(f"*{PARTIAL_SUFFIX}*"):
            remove_path(path)

    # -- records ---------------------------------------------------------------

    def read_record(self) -> CacheRecord | None:
        """The folder's ``record.json``, or None when missing or damaged (see :mod:`modelzoo.fetch._records`)."""
        return read_record(self.folder)

    def read_hashes(self) -> TrustedHashes | None:
        """The hashes trusted for this checkpoint, or None before its first verified download.

        Raises:
            CacheError: ``hashes.json`` is damaged (it is never silently reset).
        """
        return read_hashes(self.folder, self.checkpoint.name)

    # -- admitting a file --------------------------------------------------------

    def install(self, served: ServedFile, check: StateCheck | None = None) -> LoadedCheckpoint:
        """Verify ``served`` and move its weights into place (the caller holds the lock).

        Steps, each of which can refuse the file (and then nothing reaches the cache):

        1. what is it? a link, an HTML page or an empty file is refused; a zip
           that is not a torch checkpoint is an archive;
        2. size and SHA-256 of the file as served, against the manifest when
           the manifest describes a file of that format;
        3. the weights file: extracted from an archive into a temporary folder,
           or the served file itself;
        4. the weights are read with ``weights_only=True`` (an unsafe or
           truncated pickle is refused here), and ``check`` (the model
           factory's: does the state dict fit the architecture?) runs on them;
        5. the weights' fingerprint against the manifest's ``weights_sha256``,
           the weights file's SHA-256 against the manifest (checkpoint-format
           entries), and either against what was trusted since the first
           download (the fingerprint: any container of the same weights passes);
        6. ``os.replace`` into place, then ``record.json``, ``hashes.json``
           and the safetensors copy.

        Args:
            served: a complete file as served by one source; it is consumed
                (moved into place or left for the caller to delete).
            check: raises when the state dict must not be trusted.

        Returns:
            The cached file and the state dict read from it.

        Raises:
            ChecksumError, ArchiveError, CheckpointFormatError,
            UnsafeCheckpointError, CheckpointMismatchError: the file is
                refused; nothing was cached.
            CacheError: the trusted hashes are damaged, or the disk is full.
        """
        label = served.label or self.checkpoint.filename
        trusted = self.read_hashes()
        info = self._inspect(served, label)
        extract_dir = self.temp_dir() if info.kind == ARCHIVE else None
        try:
            if extract_dir is not None:
                weights = archive.extract_weights(served.path, extract_dir, name=label).path
                weights_name, weights_sha = weights.name, sha256_file(weights)
            else:
                weights, weights_name, weights_sha = served.path, self._bare_name(served.name_hint), info.sha256
            content = self._read(weights, label)
            if check is not None:
                check(self.checkpoint, content.state_dict)
            fingerprint = weights_fingerprint(content.state_dict)
            origin = self._check_weights(info, weights_sha, fingerprint, trusted)
            target = self.folder / weights_name
            self._move_into_place(weights, target)
        finally:
            if extract_dir is not None:
                remove_path(extract_dir)
        record = self._record(target, served, info, weights_sha, fingerprint, origin, trusted)
        self._keep_copy(target, content, record)
        logger.info("cached %s at %s (sha256 %s, from %s)", self.checkpoint.name, target, weights_sha, served.source)
        return LoadedCheckpoint(target, content)

    def _inspect(self, served: ServedFile, label: str) -> _Served:
        """Steps 1-2: the file's kind, hash and size, checked against the manifest."""
        checkpoint = self.checkpoint
        if not is_regular_file(served.path):
            raise CheckpointFormatError(f"{label} is not a regular file (a link or a folder): refused")
        kind = file_kind(served.path, label)
        fmt = "zip" if kind == ARCHIVE else "checkpoint"
        size = served.path.stat().st_size
        if served.size is not None and size != served.size:
            raise ChecksumError(f"{size} bytes where the manifest says this source's file has {served.size} "
                                "(truncated, moved or changed file)")
        described = fmt == checkpoint.format  # the manifest's size/hash describe a file of its format
        if described and checkpoint.size is not None and size != checkpoint.size:
            raise ChecksumError(
                f"{size} bytes where the manifest says {checkpoint.filename} has {checkpoint.size} "
                "(truncated or wrong file)"
            )
        digest = sha256_file(served.path)
        if served.sha256 is not None and digest != served.sha256:
            raise ChecksumError(f"SHA-256 {digest} differs from the manifest's {served.sha256} for this source's file "
                                "(corrupted, changed or tampered file)")
        if described and checkpoint.sha256 and digest != checkpoint.sha256:
            raise ChecksumError(
                f"SHA-256 {digest} differs from the manifest's {checkpoint.sha256} for {checkpoint.filename} "
                "(corrupted or tampered file)"
            )
        return _Served(kind=kind, format=fmt, sha256=digest, size=size)

    def _bare_name(self, hint: str | None) -> str:
        """The cache name of a weights file served bare (not in an archive); a server's name only when plain."""
        checkpoint = self.checkpoint
        if checkpoint.format == "checkpoint":
            return checkpoint.filename
        if hint is not None and is_plain_name(hint) and archive.is_weights_name(hint):
            return hint  # e.g. Drive's "resnet50_fc512_market_xent.pth.tar"
        stem = checkpoint.filename[: -len(".zip")] if checkpoint.filename.endswith(".zip") else checkpoint.filename
        return f"{stem}.pth.tar"

    def _check_weights(self, served: _Served, weights_sha: str, fingerprint: str,
                       trusted: TrustedHashes | None) -> str:
        """Step 5; returns how the weights were verified (``manifest`` or ``first download``)."""
        checkpoint = self.checkpoint
        if checkpoint.weights_sha256:
            if fingerprint != checkpoint.weights_sha256:
                raise ChecksumError(
                    f"these weights have the fingerprint {fingerprint}, the manifest pins {checkpoint.weights_sha256} "
                    f"for {checkpoint.name}: other weights, whatever the file (tampered or wrong file)"
                )
            return MANIFEST
        if checkpoint.sha256 and checkpoint.format == "checkpoint":
            if weights_sha != checkpoint.sha256:
                raise ChecksumError(
                    f"the weights' SHA-256 {weights_sha} differs from the manifest's {checkpoint.sha256} "
                    "(tampered file?)"
                )
            return MANIFEST
        if checkpoint.sha256 and served.format == checkpoint.format:
            return MANIFEST  # the served file matched the manifest in _inspect
        if trusted is not None and trusted.fingerprint:
            if fingerprint != trusted.fingerprint:
                raise ChecksumError(
                    f"these weights have the fingerprint {fingerprint[:16]}..., not the {trusted.fingerprint[:16]}... "
                    f"trusted since {checkpoint.name} was first downloaded (from {trusted.first_source}, "
                    f"{trusted.recorded_at}). If the zoo really changed the weights, forget the old ones with "
                    f"`modelzoo cache clear {checkpoint.name} --forget-hashes`"
                )
            return trusted.origin
        if trusted is not None and weights_sha != trusted.weights_sha256:
            raise ChecksumError(
                f"the weights' SHA-256 {weights_sha[:16]}... differs from {trusted.weights_sha256[:16]}... trusted "
                f"since {checkpoint.name} was first downloaded (from {trusted.first_source}, {trusted.recorded_at}). "
                f"If the zoo really changed the file, forget the old hash with "
                f"`modelzoo cache clear {checkpoint.name} --forget-hashes`"
            )
        return trusted.origin if trusted is not None else FIRST_DOWNLOAD

    def _move_into_place(self, weights: Path, target: Path) -> None:
        try:
            os.replace(weights, target)
        except OSError as exc:
            raise folder_error(self.folder, exc) from exc

    def _record(self, target: Path, served: ServedFile, info: _Served, weights_sha: str, fingerprint: str,
                origin: str, trusted: TrustedHashes | None) -> CacheRecord:
        """Step 6: record the cached file and the hashes now trusted; drop stale files."""
        previous = self.read_record()  # validated: it names a regular file in this folder, or is None
        size = target.stat().st_size
        record = CacheRecord(
            name=self.checkpoint.name, weights_file=target.name, sha256=weights_sha, size=size,
            source=served.source, served_sha256=info.sha256, served_format=info.format, downloaded_at=_now(),
            fingerprint=fingerprint,
        )
        write_record(self.folder, record, self._temp_prefix)
        if trusted is None or (trusted.fingerprint or trusted.weights_sha256) not in (fingerprint, weights_sha):
            trusted = TrustedHashes(weights_sha256=weights_sha, weights_size=size, origin=origin,
                                    first_source=served.source, recorded_at=_now(), fingerprint=fingerprint)
        elif not trusted.fingerprint:  # a trust file of an earlier release learns the fingerprint
            trusted = replace(trusted, fingerprint=fingerprint)
        if not any(entry.get("sha256") == info.sha256 for entry in trusted.served):
            trusted.served.append({"sha256": info.sha256, "size": info.size, "format": info.format,
                                   "source": served.source})
        write_hashes(self.folder, trusted, self._temp_prefix)
        if previous and previous.weights_file != target.name:
            remove_path(self.folder / previous.weights_file)
            remove_path(self.copy_path(self.folder / previous.weights_file))
        remove_path(self.copy_path(target))
        return record

    @property
    def _temp_prefix(self) -> str:
        return f"{TEMP_PREFIX}{os.getpid()}-"

    def _keep_copy(self, weights: Path, content: CheckpointContent, record: CacheRecord) -> None:
        """Write the safetensors copy and record its hash (the lock is held); a failure is said once."""
        digest = _copies.write_copy(weights, content, record, self.checkpoint.name, self.temp_path)
        if digest is not None:
            with contextlib.suppress(CacheError):
                write_record(self.folder, replace(record, copy_sha256=digest), self._temp_prefix)

    # -- reading ---------------------------------------------------------------

    def _read(self, weights: Path, label: str | None = None) -> CheckpointContent:
        """The weights file's content, read with the checkpoint's layout (torchreid's, fast-reid's, ...)."""
        return read_checkpoint(weights, self.checkpoint.layout, name=label, **self.checkpoint.reader_options)

    def load(self) -> LoadedCheckpoint | None:
        """The cached checkpoint's state dict; None when it is not cached.

        The safetensors copy is read when it is current (made from the
        weights file the record names); otherwise the weights file itself is
        read and the copy rebuilt under the lock, where the cache is
        writable (where it is not, this is said once, and every load reads
        the weights file).

        Raises:
            CheckpointFormatError, UnsafeCheckpointError: the cached weights
                file cannot be read (damaged since it was verified).
        """
        cached = self._cached()
        if cached is None:
            return None
        path, record = cached
        copied = _copies.read_copy(path, record)
        if copied is not None:
            return LoadedCheckpoint(path, copied)
        content = self._read(path)
        try:
            with self.locked():
                if (fresh := self.read_record()) is not None and fresh.sha256 == record.sha256:
                    self._keep_copy(path, content, fresh)
        except CacheError as exc:
            _copies.say_once(self.folder, f"cannot rebuild the safetensors copy in {self.folder} ({exc}); "
                             "loads read the original weights file instead, which is slower")
        return LoadedCheckpoint(path, content)

    def read_into(self, targets: Mapping[str, torch.Tensor]) -> bool:
        """Overwrite ``targets`` with the cached values, straight from the safetensors copy.

        Applies only when the copy is current and holds exactly ``targets``'
        names, shapes and dtypes (contiguous CPU tensors); otherwise nothing is
        written and False is returned (the caller then takes :meth:`load`,
        which treats a bad copy the same way).

        Raises:
            OSError: reading failed half-way; ``targets`` hold a mix of old and
                new values and must be loaded again.
        """
        cached = self._cached()
        return cached is not None and _copies.read_copy_into(*cached, targets)

    # -- maintenance -------------------------------------------------------------

    def verify(self) -> VerifyResult | None:
        """Hash the cached weights file (and its safetensors copy) again; None when nothing is cached.

        A copy whose hash changed since it was written is rebuilt from the
        verified weights file (``repaired`` says so).
        """
        record = self.read_record()
        if record is None:
            return None
        path = self.folder / record.weights_file
        model, _, key = record.name.partition(".")
        again = f"fetch it again with `modelzoo download {model} {key} --force`"
        size = path.stat().st_size
        if size != record.size:
            return VerifyResult(record.name, path, False, f"size {size} bytes, recorded {record.size} (damaged); {again}")
        digest = sha256_file(path)
        if digest != record.sha256:
            return VerifyResult(record.name, path, False, f"SHA-256 {digest[:16]}... differs from the recorded "
                                f"{record.sha256[:16]}... (damaged); {again}")
        if record.fingerprint and weights_fingerprint(self._read(path).state_dict) != record.fingerprint:
            return VerifyResult(record.name, path, False, f"the weights no longer have their recorded fingerprint "
                                f"{record.fingerprint[:16]}...; {again}")
        repaired = ""
        if _copies.copy_matches(path, record) is False:
            remove_path(self.copy_path(path))
            self.load()  # rebuilds it from the verified weights file
            repaired = f"the safetensors copy {self.copy_path(path).name} was damaged; rebuilt it from the weights"
        return VerifyResult(record.name, path, True, repaired=repaired)

    def clear(self, forget_hashes: bool = False) -> bool:
        """Delete the cached files and partial downloads; True when anything was removed.

        The hashes trusted since the first download are kept, so a later
        download must match them, unless ``forget_hashes``.  The lock file
        stays: another process may be waiting on it.

        Raises:
            CacheError: the folder cannot be locked or changed (read-only cache).
        """
        if not self.folder.is_dir():
            return False
        keep = {LOCK, LOCK_OWNER} if forget_hashes else {LOCK, LOCK_OWNER, HASHES}
        with self.locked():
            doomed = [path for path in self.folder.iterdir() if path.name not in keep]
            for path in doomed:
                try:
                    path.unlink() if not path.is_dir() or path.is_symlink() else remove_tree(path)
                except OSError as exc:
                    raise folder_error(self.folder, exc) from exc
        return bool(doomed)


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it (errors raised, unlike :func:`remove_path`)."""
    import shutil

    shutil.rmtree(path)


def cached_folders(checkpoints_dir: Path) -> list[Path]:
    """Every checkpoint folder under the cache's ``checkpoints/`` folder, sorted."""
    if not checkpoints_dir.is_dir():
        return []
    return sorted(path for path in checkpoints_dir.glob("*/*") if path.is_dir() and not path.is_symlink())


