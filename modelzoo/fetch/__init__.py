"""Download, cache, verify and extract checkpoints like a package manager.

Public API:

* :func:`download` -- the path of a verified, ready-to-load weights file in
  the cache, fetched from the first source that yields a valid file;
* :func:`import_file` -- register a file obtained by hand;
* :func:`cached_path` -- the cached weights file, or None (never downloads);
* :func:`list_cached`, :func:`verify_cached`, :func:`clear_cache` -- the
  cache commands.

Never is a broken file cached: one lock per checkpoint, downloads go to a
partial file beside the target, the size and SHA-256 are checked (against
the manifest, or against the hashes trusted since the first download), the
bytes are read back with ``weights_only=True``, and only then does
``os.replace`` put the weights in place.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import requests

from modelzoo import __version__, config
from modelzoo.errors import ChecksumError, DownloadError, ModelZooError, NotCachedError
from modelzoo.fetch import cache, gdrive, hf, http
from modelzoo.fetch.http import FetchOptions
from modelzoo.fetch.install import ServedFile, install
from modelzoo.fetch.sources import FILE, GDRIVE, HF, HTTP, Candidate, candidates
from modelzoo.fetch.verify import sha256_file
from modelzoo.manifest import Checkpoint, resolve_checkpoint, resolve_name

__all__ = [
    "CacheEntry",
    "FetchOptions",
    "VerifyResult",
    "cached_path",
    "clear_cache",
    "download",
    "import_file",
    "list_cached",
    "verify_cached",
]

logger = logging.getLogger(__name__)

_SKIPPED_OFFLINE = "skipped: offline mode"


def _as_checkpoint(checkpoint: Checkpoint | str, dataset: str | None = None) -> Checkpoint:
    return checkpoint if isinstance(checkpoint, Checkpoint) else resolve_checkpoint(checkpoint, dataset)


def cached_path(checkpoint: Checkpoint | str) -> Path | None:
    """The cached weights file of ``checkpoint``, or None; never touches the network.

    Args:
        checkpoint: a manifest entry or a ``model.dataset`` name.
    """
    return cache.cached_weights(_as_checkpoint(checkpoint))


def download(
    checkpoint: Checkpoint | str,
    dataset: str | None = None,
    *,
    progress: bool = True,
    force: bool = False,
    options: FetchOptions | None = None,
) -> Path:
    """The path of a verified, ready-to-load weights file of ``checkpoint`` in the cache.

    Sources are tried in order (``MODELZOO_MIRROR`` bases, then the manifest's);
    a zip is extracted.  Offline (``MODELZOO_OFFLINE``/``HF_HUB_OFFLINE``),
    only the cache, local mirror folders and the Hugging Face cache are used.

    Args:
        checkpoint: a manifest entry, a model name (``"resnet50_fc512"``) or a
            ``model.dataset`` name.
        dataset: the checkpoint's dataset key when ``checkpoint`` is a model
            name (``modelzoo.download("resnet50_fc512", "market1501")``).
        progress: show a progress bar (only when stderr is a terminal).
        force: fetch again even when cached (the cached file stays until a
            new one is verified).
        options: timeouts, retries and backoff.

    Returns:
        The weights file (``.pth``, ``.pth.tar``, ...) in the cache.

    Raises:
        NotCachedError: offline and not cached.
        ChecksumError: every source failed, each with a wrong hash or size.
        DownloadError: every source failed; the message lists each one and why,
            and says how to import a file obtained by hand.
    """
    checkpoint = _as_checkpoint(checkpoint, dataset)
    if not force and (hit := cache.cached_weights(checkpoint)):
        return hit
    offline = config.offline()
    tried = candidates(checkpoint)
    if offline and not any(not c.touches_network for c in tried):
        raise NotCachedError(_not_cached_message(checkpoint))
    options = options or FetchOptions()
    with cache.locked(checkpoint) as folder, requests.Session() as session:
        if not force and (hit := cache.cached_weights(checkpoint)):
            return hit  # another process fetched it while we waited for the lock
        cache.remove_leftovers(folder)
        session.headers["User-Agent"] = f"reid-modelzoo/{__version__}"
        failures: list[tuple[Candidate, str, Exception]] = []
        for candidate in tried:
            try:
                path = _try_candidate(_Attempt(checkpoint, folder, session, options, progress, offline), candidate)
            except ModelZooError as exc:
                logger.info("%s: %s failed: %s", checkpoint.name, candidate.describe(), exc)
                failures.append((candidate, str(exc), exc))
                continue
            cache.remove_partials(folder)
            _report_skipped_failures(checkpoint, candidate, failures)
            return path
    raise _all_failed(checkpoint, failures, offline)


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
    folder: Path  # the checkpoint's cache folder (its lock is held)
    session: requests.Session
    options: FetchOptions
    progress: bool
    offline: bool


def _try_candidate(attempt: _Attempt, candidate: Candidate) -> Path:
    """Fetch from one candidate and install; a refused file is deleted."""
    if candidate.problem:
        raise DownloadError(candidate.problem)
    if attempt.offline and candidate.touches_network:
        raise DownloadError(_SKIPPED_OFFLINE)
    logger.info("%s: trying %s", attempt.checkpoint.name, candidate.describe())
    served = _obtain(attempt, candidate)
    try:
        return install(attempt.checkpoint, served, attempt.folder)
    finally:
        cache.remove_path(served.path)  # gone when moved into place; else refused or an extracted archive


def _obtain(attempt: _Attempt, candidate: Candidate) -> ServedFile:
    """A complete file from one candidate, in a partial or temporary file beside the target."""
    folder, filename = attempt.folder, attempt.checkpoint.filename
    if candidate.kind == FILE:
        return _copy_in(Path(candidate.location), folder, filename, candidate.describe())
    if candidate.kind == HF:
        local = hf.fetch_hf(candidate.location, offline=attempt.offline, progress=attempt.progress)
        return _copy_in(local, folder, filename, candidate.describe())
    partial = cache.partial_path(folder, filename, _source_key(candidate.location))
    if candidate.kind == GDRIVE:
        result = gdrive.fetch_gdrive(candidate.location, partial, session=attempt.session, options=attempt.options,
                                     progress=attempt.progress)
    elif candidate.kind == HTTP:
        result = http.fetch_url(candidate.location, partial, session=attempt.session, options=attempt.options,
                                progress=attempt.progress)
    else:
        raise DownloadError(f"unknown source kind {candidate.kind!r}")
    return ServedFile(partial, candidate.describe(), result.filename)


def _source_key(location: str) -> str:
    """A short, stable key of a source URL, so each source has its own resumable partial."""
    return hashlib.sha256(location.encode("utf-8")).hexdigest()[:10]


def _copy_in(source: Path, folder: Path, filename: str, description: str) -> ServedFile:
    """Copy a local file beside the target (it is then renamed, never the original)."""
    if not source.is_file():
        raise DownloadError(f"no such file {source}")
    temp = cache.temp_path(folder, filename)
    try:
        shutil.copyfile(source, temp)
    except OSError as exc:
        cache.remove_path(temp)
        raise DownloadError(f"cannot read {source} ({exc})") from exc
    return ServedFile(temp, description, source.name)


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
        f"(MODELZOO_OFFLINE or HF_HUB_OFFLINE).{failures}\n"
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


# ---------------------------------------------------------------------------
# import a file obtained by hand


def import_file(checkpoint: Checkpoint | str, path: str | Path) -> Path:
    """Register a file obtained by hand: verified, extracted if a zip, cached.

    Works offline.  The file itself is left where it is (a copy is cached).

    Args:
        checkpoint: a manifest entry or a ``model.dataset`` name.
        path: the file (the zip the manifest names, or the bare weights file).

    Returns:
        The cached weights file.

    Raises:
        FileNotFoundError: no such file.
        ChecksumError, ArchiveError, CheckpointFormatError,
        UnsafeCheckpointError: the file is refused; nothing was cached.
    """
    checkpoint = _as_checkpoint(checkpoint)
    source = Path(path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"no file at {source}: give the path of the downloaded {checkpoint.filename}")
    with cache.locked(checkpoint) as folder:
        cache.remove_leftovers(folder)
        served = _copy_in(source, folder, checkpoint.filename, f"imported {source.resolve()}")
        try:
            return install(checkpoint, served, folder)
        finally:
            cache.remove_path(served.path)


# ---------------------------------------------------------------------------
# list / verify / clear


@dataclass(frozen=True)
class CacheEntry:
    """One cached checkpoint."""

    name: str
    path: Path
    size: int
    sha256: str
    source: str
    downloaded_at: str


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of re-checking one cached checkpoint."""

    name: str
    path: Path
    ok: bool
    problem: str = ""


def _selected_folders(name: str | Checkpoint | None) -> list[Path]:
    """Cache folders of every checkpoint (None), of one model, or of one ``model.dataset``."""
    if name is None:
        return cache.cached_folders()
    if isinstance(name, Checkpoint):
        return [cache.checkpoint_dir(name)]
    if "." in name:
        return [cache.checkpoint_dir(resolve_checkpoint(name))]
    record = resolve_name(name)
    return [cache.checkpoint_dir(c) for c in record.checkpoints.values()]


def list_cached(name: str | Checkpoint | None = None) -> list[CacheEntry]:
    """The checkpoints in the cache (all, one model's, or one), sorted by name."""
    entries = []
    for folder in _selected_folders(name):
        record = cache.read_record(folder)
        path = folder / record.weights_file if record else None
        if record and path.is_file():
            entries.append(
                CacheEntry(record.name, path, record.size, record.sha256, record.source, record.downloaded_at)
            )
    return sorted(entries, key=lambda entry: entry.name)


def verify_cached(name: str | Checkpoint | None = None) -> list[VerifyResult]:
    """Hash every selected cached weights file again and compare with its record.

    Args:
        name: None for the whole cache, a model name, or ``model.dataset``.

    Returns:
        One result per cached checkpoint; ``ok`` is False for a file whose
        size or SHA-256 changed since it was verified.
    """
    results = []
    for folder in _selected_folders(name):
        record = cache.read_record(folder)
        if record is None:
            continue
        path = folder / record.weights_file
        results.append(VerifyResult(record.name, path, *_check_cached(record, path)))
    return results


def _check_cached(record: cache.CacheRecord, path: Path) -> tuple[bool, str]:
    model, _, key = record.name.partition(".")
    again = f"fetch it again with `modelzoo download {model} {key} --force`"
    if not path.is_file():
        return False, f"the weights file {path.name} is missing; {again}"
    size = path.stat().st_size
    if size != record.size:
        return False, f"size {size} bytes, recorded {record.size} (damaged); {again}"
    digest = sha256_file(path)
    if digest != record.sha256:
        return False, f"SHA-256 {digest[:16]}... differs from the recorded {record.sha256[:16]}... (damaged); {again}"
    return True, ""


def clear_cache(name: str | Checkpoint | None = None, *, forget_hashes: bool = False) -> list[str]:
    """Delete cached checkpoints (all, one model's, or one) and their partial downloads.

    The hashes trusted since a checkpoint's first download are kept, so a
    later download must match them, unless ``forget_hashes`` is True.

    Returns:
        The names (``model.dataset``) whose files were removed.
    """
    removed = []
    for folder in _selected_folders(name):
        if not folder.is_dir():
            continue
        record = cache.read_record(folder)
        cleared = _clear_folder(folder, forget_hashes)
        if cleared:
            removed.append(record.name if record else f"{folder.parent.name}.{folder.name}")
    return sorted(removed)


def _clear_folder(folder: Path, forget_hashes: bool) -> bool:
    from filelock import FileLock

    keep = {cache.LOCK} if forget_hashes else {cache.LOCK, cache.HASHES}
    with FileLock(str(folder / cache.LOCK)):
        doomed = [path for path in folder.iterdir() if path.name not in keep]
        for path in doomed:
            cache.remove_path(path)
    return bool(doomed)  # the lock file stays: another process may be waiting on it
