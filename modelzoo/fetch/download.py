"""Get a checkpoint into its store: try each source in turn, hand the first complete file to the store.

Sources are tried in order (mirrors first, then the manifest's); each failure
is logged and reported in the final error, which says how to import a file
obtained by hand.  The store (:mod:`modelzoo.fetch.store`) decides whether a
file is admitted; this module only obtains bytes.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from modelzoo import __version__, config
from modelzoo.config import FetchSettings
from modelzoo.errors import CacheError, ChecksumError, DownloadError, ModelZooError, NotCachedError
from modelzoo.fetch import gdrive, hf, http
from modelzoo.fetch.http import FetchOptions
from modelzoo.fetch.sources import FILE, GDRIVE, HF, HTTP, Candidate, candidates
from modelzoo.fetch.store import CheckpointStore, LoadedCheckpoint, ServedFile, StateCheck, remove_path
from modelzoo.manifest import Checkpoint, resolve_checkpoint

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch

logger = logging.getLogger(__name__)

_SKIPPED_OFFLINE = "skipped: offline mode"


def as_checkpoint(checkpoint: Checkpoint | str, dataset: str | None = None) -> Checkpoint:
    """A manifest entry from an entry, a model name (with ``dataset``) or a ``model.dataset`` name."""
    return checkpoint if isinstance(checkpoint, Checkpoint) else resolve_checkpoint(checkpoint, dataset)


def store_for(checkpoint: Checkpoint, settings: FetchSettings) -> CheckpointStore:
    """The store of ``checkpoint`` in the cache that ``settings`` name."""
    return CheckpointStore(checkpoint, settings.checkpoints_dir, lock_timeout=settings.lock_timeout)


def load_checkpoint(
    checkpoint: Checkpoint,
    settings: FetchSettings,
    *,
    into: Mapping[str, torch.Tensor] | None = None,
    progress: bool = True,
    options: FetchOptions | None = None,
    check: StateCheck | None = None,
) -> LoadedCheckpoint:
    """The checkpoint's state dict, downloaded and verified first when it is not cached.

    The one call the model factory makes.  A cold download returns the state
    dict the store read while verifying the file (one read in all); a warm
    cache reads its safetensors copy.

    Args:
        checkpoint: the manifest entry.
        settings: cache folder, mirrors and offline mode.
        into: tensors to fill in place when the cached copy holds exactly
            their names, shapes and dtypes (then ``filled_in_place`` is True).
        progress: show a progress bar (only when stderr is a terminal).
        options: timeouts, retries and backoff.
        check: runs on a downloaded state dict before its file is trusted.

    Raises:
        As :func:`download`; CheckpointFormatError when the cached file was
        damaged since it was verified.
    """
    store = store_for(checkpoint, settings)
    if into is not None and store.read_into(into):
        path = store.weights_path()
        assert path is not None  # read_into succeeded on it
        from modelzoo.formats import CheckpointContent

        return LoadedCheckpoint(path, CheckpointContent(dict(into)), filled_in_place=True)
    cached = store.load()
    if cached is not None:
        return cached
    return _fetch(checkpoint, store, settings, progress=progress, force=False, options=options, check=check)


def download(
    checkpoint: Checkpoint | str,
    dataset: str | None = None,
    *,
    progress: bool = True,
    force: bool = False,
    cache_dir: str | Path | None = None,
    mirrors: str | list[str] | tuple[str, ...] | None = None,
    offline: bool | None = None,
    options: FetchOptions | None = None,
    check: StateCheck | None = None,
) -> Path:
    """The path of a verified, ready-to-load weights file of ``checkpoint`` in the cache.

    Sources are tried in order (the mirrors, then the manifest's); a zip is
    extracted.  Offline, only the cache, local mirror folders and the Hugging
    Face cache are used.

    Args:
        checkpoint: a manifest entry, a model name (``"resnet50_fc512"``) or a
            ``model.dataset`` name.
        dataset: the checkpoint's dataset key when ``checkpoint`` is a model
            name (``modelzoo.download("resnet50_fc512", "market1501")``).
        progress: show a progress bar (only when stderr is a terminal).
        force: fetch again even when cached (the cached file stays until a
            new one is verified).
        cache_dir: the cache root (default ``MODELZOO_HOME``).
        mirrors: bases tried before the manifest's sources, a list or one
            comma-separated string (default ``MODELZOO_MIRROR``).
        offline: never use the network (default ``MODELZOO_OFFLINE`` / ``HF_HUB_OFFLINE``).
        options: timeouts, retries and backoff.
        check: runs on a downloaded state dict before its file is trusted
            (``modelzoo.download`` checks that it fits the architecture).

    Returns:
        The weights file (``.pth``, ``.pth.tar``, ...) in the cache.

    Raises:
        NotCachedError: offline and not cached.
        ChecksumError: every source failed, each with a wrong hash or size.
        DownloadError: every source failed; the message lists each one and why,
            and says how to import a file obtained by hand.
        CacheError: the cache cannot be written (unwritable, full, locked too
            long) or its trusted hashes are damaged.
    """
    checkpoint = as_checkpoint(checkpoint, dataset)
    settings = config.fetch_settings(cache_dir=cache_dir, mirrors=mirrors, offline=offline)
    store = store_for(checkpoint, settings)
    if not force and (hit := store.weights_path()):
        return hit
    return _fetch(checkpoint, store, settings, progress=progress, force=force, options=options, check=check).path


def _fetch(
    checkpoint: Checkpoint,
    store: CheckpointStore,
    settings: FetchSettings,
    *,
    progress: bool,
    force: bool,
    options: FetchOptions | None,
    check: StateCheck | None,
) -> LoadedCheckpoint:
    """Download under the checkpoint's lock; the first source whose file the store admits wins.

    A source's failure of any kind is logged and the next one tried; a
    :class:`CacheError` (this machine's problem, not the source's) stops at once.
    """
    tried = candidates(checkpoint, settings.mirrors)
    if settings.offline and not any(not c.touches_network for c in tried):
        raise NotCachedError(_not_cached_message(checkpoint))
    with store.locked(), requests.Session() as session:
        if not force and (cached := store.load()) is not None:
            return cached  # another process fetched it while we waited for the lock
        store.remove_leftovers()
        session.headers["User-Agent"] = f"reid-modelzoo/{__version__}"
        attempt = _Attempt(checkpoint, store, session, options or FetchOptions(), progress, settings, check)
        failures: list[tuple[Candidate, str, Exception]] = []
        for candidate in tried:
            try:
                loaded = _try_candidate(attempt, candidate)
            except CacheError:
                raise
            except ModelZooError as exc:
                logger.info("%s: %s failed: %s", checkpoint.name, candidate.describe(), exc)
                failures.append((candidate, str(exc), exc))
                continue
            store.remove_partials()
            _report_skipped_failures(checkpoint, candidate, failures)
            return loaded
    raise _all_failed(checkpoint, failures, settings.offline)


def _report_skipped_failures(
    checkpoint: Checkpoint, winner: Candidate, failures: list[tuple[Candidate, str, Exception]]
) -> None:
    """One warning when earlier sources failed (a broken mirror is worth knowing about)."""
    real = [(c, why) for c, why, _ in failures if why != _SKIPPED_OFFLINE]
    if real:
        details = "; ".join(f"{c.describe()}: {why}" for c, why in real)
        logger.warning(
            "%s came from %s after %d source(s) failed: %s", checkpoint.name, winner.describe(), len(real), details
        )


@dataclass(frozen=True)
class _Attempt:
    """What every source tried for one download shares."""

    checkpoint: Checkpoint
    store: CheckpointStore  # its lock is held
    session: requests.Session
    options: FetchOptions
    progress: bool
    settings: FetchSettings
    check: StateCheck | None = None


def _try_candidate(attempt: _Attempt, candidate: Candidate) -> LoadedCheckpoint:
    """Fetch from one candidate and hand the file to the store; a refused file is deleted."""
    if candidate.problem:
        raise DownloadError(candidate.problem)
    if attempt.settings.offline and candidate.touches_network:
        raise DownloadError(_SKIPPED_OFFLINE)
    logger.info("%s: trying %s", attempt.checkpoint.name, candidate.describe())
    try:
        served = _obtain(attempt, candidate)
    except (requests.RequestException, ValueError, UnicodeError) as exc:  # whatever the request layer raises
        raise DownloadError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    try:
        return attempt.store.install(served, attempt.check)
    finally:
        remove_path(served.path)  # gone when moved into place; else refused or an extracted archive


def _obtain(attempt: _Attempt, candidate: Candidate) -> ServedFile:
    """A complete file from one candidate, in a partial or temporary file of the store."""
    store, filename = attempt.store, attempt.checkpoint.filename
    if candidate.kind == FILE:
        return _copy_in(Path(candidate.location), store, filename, candidate.describe())
    if candidate.kind == HF:
        local = hf.fetch_hf(candidate.location, offline=attempt.settings.offline, progress=attempt.progress)
        served = _copy_in(local, store, filename, candidate.describe())
        return replace(served, sha256=candidate.sha256, size=candidate.size)
    partial = store.partial_path(_source_key(candidate.location))
    max_bytes, resume_record = _max_bytes(attempt, candidate), store.resume_record_path(partial)
    if candidate.kind == GDRIVE:
        result = gdrive.fetch_gdrive(candidate.location, partial, session=attempt.session, options=attempt.options,
                                     progress=attempt.progress, endpoint=attempt.settings.gdrive_url,
                                     max_bytes=max_bytes, resume_record=resume_record)
    elif candidate.kind == HTTP:
        result = http.fetch_url(candidate.location, partial, session=attempt.session, options=attempt.options,
                                progress=attempt.progress, max_bytes=max_bytes, resume_record=resume_record)
    else:
        raise DownloadError(f"unknown source kind {candidate.kind!r}")
    source = candidate.describe()
    if result.url and result.url != candidate.location and candidate.kind == HTTP:
        source = f"{source} (redirected to {result.url})"
    return ServedFile(partial, source, result.filename, label=filename, sha256=candidate.sha256, size=candidate.size)


def _max_bytes(attempt: _Attempt, candidate: Candidate) -> int:
    """The manifest's size when it describes what this source serves; else the configured ceiling."""
    checkpoint = attempt.checkpoint
    if candidate.size is not None:
        return candidate.size
    if checkpoint.size is not None and candidate.format == checkpoint.format:
        return checkpoint.size
    return attempt.settings.max_download_bytes


def _source_key(location: str) -> str:
    """A short, stable key of a source URL, so each source has its own resumable partial."""
    return hashlib.sha256(location.encode("utf-8")).hexdigest()[:10]


def _copy_in(source: Path, store: CheckpointStore, filename: str, description: str) -> ServedFile:
    """Copy a local file into the store's folder (it is then renamed, never the original)."""
    if not source.is_file():
        raise DownloadError(f"no such file {source}")
    temp = store.temp_path(filename)
    try:
        shutil.copyfile(source, temp)
    except OSError as exc:
        remove_path(temp)
        raise DownloadError(f"cannot read {source} ({exc})") from exc
    return ServedFile(temp, description, source.name, label=source.name)


# ---------------------------------------------------------------------------
# import a file obtained by hand


def import_file(checkpoint: Checkpoint | str, path: str | Path, *, cache_dir: str | Path | None = None,
                check: StateCheck | None = None) -> Path:
    """Register a file obtained by hand: verified, extracted if a zip, cached.

    Works offline.  The file itself is left where it is (a copy is cached).

    Args:
        checkpoint: a manifest entry or a ``model.dataset`` name.
        path: the file (the zip the manifest names, or the bare weights file).
        cache_dir: the cache root (default ``MODELZOO_HOME``).
        check: runs on the file's state dict before it is trusted
            (``modelzoo import`` checks that it fits the architecture).

    Returns:
        The cached weights file.

    Raises:
        FileNotFoundError: no such file.
        ChecksumError, ArchiveError, CheckpointFormatError,
        UnsafeCheckpointError: the file is refused; nothing was cached.
    """
    checkpoint = as_checkpoint(checkpoint)
    source = Path(path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"no file at {source}: give the path of the downloaded {checkpoint.filename}")
    store = store_for(checkpoint, config.fetch_settings(cache_dir=cache_dir))
    with store.locked():
        store.remove_leftovers()
        served = _copy_in(source, store, checkpoint.filename, f"imported {source.resolve()}")
        try:
            return store.install(served, check).path
        finally:
            remove_path(served.path)


# ---------------------------------------------------------------------------
# messages that say what to do next


def _cli_words(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.model} {checkpoint.key}"


def _expected_file(checkpoint: Checkpoint) -> str:
    sha = checkpoint.sha256 or "not published (trusted on first download)"
    size = f"{checkpoint.size} bytes" if checkpoint.size is not None else "unknown"
    return f"{checkpoint.filename} ({checkpoint.format}; sha256 {sha}; size {size})"


def _import_hint(checkpoint: Checkpoint) -> str:
    return (
        f"If you can get the file another way (a browser, a colleague, another mirror), register it with:\n"
        f"    modelzoo import {_cli_words(checkpoint)} /path/to/{checkpoint.filename}\n"
        f"(the bare weights file that a zip holds is accepted too), or set MODELZOO_MIRROR to a folder or "
        f"server that holds {checkpoint.filename}."
    )


def _not_cached_message(checkpoint: Checkpoint, failures: str = "") -> str:
    return (
        f"{checkpoint.name} is not in the cache and offline mode is on "
        f"(offline=True, MODELZOO_OFFLINE or HF_HUB_OFFLINE).{failures}\n"
        f"Download it while online with:\n    modelzoo download {_cli_words(checkpoint)}\n"
        f"or register a file you already have with:\n"
        f"    modelzoo import {_cli_words(checkpoint)} /path/to/{checkpoint.filename}"
    )


def _all_failed(
    checkpoint: Checkpoint, failures: list[tuple[Candidate, str, Exception]], offline: bool
) -> ModelZooError:
    lines = "\n".join(f"  {i}. {c.describe()}: {why}" for i, (c, why, _) in enumerate(failures, 1))
    if offline:
        return NotCachedError(_not_cached_message(checkpoint, f"\nLocal sources tried:\n{lines}"))
    message = (
        f"could not download {checkpoint.name}: every source failed.\n{lines}\n"
        f"Expected file: {_expected_file(checkpoint)}.\n{_import_hint(checkpoint)}"
    )
    if failures and all(isinstance(exc, ChecksumError) for _, _, exc in failures):
        return ChecksumError(message)
    return DownloadError(message)
