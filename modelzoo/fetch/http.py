"""Resumable HTTP downloads into a partial file, bounded in size and time.

One function, :func:`fetch_url`, streams a URL into a ``*.incomplete`` file
with connect/read timeouts, retries with capped exponential backoff on
connection errors, timeouts and 5xx answers (``Retry-After`` honoured up to a
cap), and resumes from what the partial file already holds with a ``Range``
request guarded by ``If-Range``: the ETag or Last-Modified of the response the
partial came from is kept beside it, and a file that changed since (or a
partial without validators) restarts from zero, so two files are never
spliced.  A server that ignores ``Range`` gets a clean restart.

Every download is capped (the manifest's size, else a ceiling), checked
against ``Content-Length`` before the body and against the bytes written
during it, and a transfer slower than a minimum speed for too long is cut
(curl's low-speed limit).  An HTML page is never written to the partial
file: the caller decides what it means (Google Drive uses that to follow its
confirmation step).  Any failure of the request layer is this source's
failure (:class:`~modelzoo.errors.DownloadError`); only http and https are
followed.  A full disk is not a source's failure: it is a
:class:`~modelzoo.errors.CacheError`, and the partial that filled it is removed.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import requests

from modelzoo.config import DEFAULT_MAX_DOWNLOAD_BYTES
from modelzoo.errors import DownloadError
from modelzoo.fetch._files import disk_full, is_disk_full, is_plain_name, open_partial, remove_path, resumable_size
from modelzoo.formats.sniff import SNIFF_BYTES, html_title, looks_like_html

logger = logging.getLogger(__name__)

MAX_HTML_BYTES = 1 << 20  # an interstitial or error page is far smaller
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class FetchOptions:
    """Network settings of a download (tests shorten them; users rarely need to).

    Attributes:
        connect_timeout: seconds to wait for a connection.
        read_timeout: seconds to wait for the next bytes of an answer.
        retries: attempts after the first, on connection errors, timeouts,
            429 and 5xx answers.
        backoff: seconds before the first retry; doubled after each retry.
        max_backoff: cap of the wait between retries.
        max_retry_after: cap of a server's ``Retry-After``, in seconds.
        chunk_size: bytes read and written at a time.
        max_redirects: confirmation pages (Google Drive) followed at most.
        low_speed_limit: bytes per second below which a transfer is too slow ...
        low_speed_time: ... when it stays below it this many seconds (curl's
            ``--speed-limit`` / ``--speed-time``).
    """

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    chunk_size: int = 256 << 10
    max_redirects: int = 3
    low_speed_limit: int = 1024
    low_speed_time: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))


@dataclass(frozen=True)
class Target:
    """Where to ask for the file: a URL and its query parameters."""

    url: str
    params: dict[str, str] | None = None


@dataclass(frozen=True)
class FetchResult:
    """What a finished transfer learned about the file."""

    url: str  # where the bytes came from, after redirects
    size: int
    filename: str | None  # from Content-Disposition, when the server names the file plainly


# An HTML page arrived instead of the file: the handler returns where to ask
# next (Google Drive's confirmation), or raises DownloadError saying what the
# page means.  The default handler always raises.
HtmlHandler = Callable[[str, requests.Response], Target]


class _Retryable(Exception):
    """A failure worth another attempt (5xx, 429, a body cut short, a stalled transfer)."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait  # the server's Retry-After, when it gave one


class _Restart(Exception):
    """The partial file cannot be resumed; start again from byte 0."""


class _HtmlPage(Exception):
    """An HTML page arrived instead of the file (nothing was written)."""

    def __init__(self, text: str, response: requests.Response) -> None:
        super().__init__("an HTML page")
        self.text = text
        self.response = response


# Worth another attempt: the connection, a timeout, a body cut short, a 5xx or 429.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, _Retryable)


def refuse_html(page: str, response: requests.Response) -> Target:
    """Default :data:`HtmlHandler`: an HTML page is never the file."""
    raise DownloadError(
        f"the server answered with an HTML page ({html_title(page)!r}, HTTP {response.status_code}) "
        "instead of the file: an error page, a login or a captive portal"
    )


def check_scheme(url: str) -> None:
    """Refuse anything but an http(s) URL with a host.

    Raises:
        DownloadError: another scheme (``file://``, ``ftp://``) or a malformed URL.
    """
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise DownloadError(f"{url[:200]!r} is not a valid URL ({exc})") from None
    if parsed.scheme.lower() not in SCHEMES or not parsed.hostname:
        raise DownloadError(f"{url[:200]!r} is not an http(s) URL; only http and https are followed")


def fetch_url(
    url: str,
    partial: Path,
    *,
    session: requests.Session,
    options: FetchOptions,
    params: dict[str, str] | None = None,
    progress: bool = False,
    on_html: HtmlHandler = refuse_html,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    resume_record: Path | None = None,
) -> FetchResult:
    """Download ``url`` into ``partial``, resuming what it already holds.

    On return ``partial`` holds the whole body.  On a transfer failure it keeps
    what arrived (with the validators of its response in ``resume_record``),
    so a later call resumes.

    Args:
        url: the file's URL.
        partial: the ``*.incomplete`` file beside the cache target.
        session: the requests session (cookies matter for Google Drive).
        options: timeouts, retries, backoff, low-speed limit.
        params: query parameters.
        progress: show a progress bar (only when stderr is a terminal).
        on_html: called when an HTML page arrives instead of the file.
        max_bytes: the largest file accepted.
        resume_record: where the response's ETag / Last-Modified are kept
            (default: beside the partial, ``<partial>.json``).

    Raises:
        DownloadError: a 4xx answer, an HTML page, a file over ``max_bytes``,
            a malformed or non-http URL, any other request failure, or
            retries exhausted.
        CacheError: the disk is full (the partial is removed).
    """
    check_scheme(url)
    transfer = _Transfer(partial, resume_record or partial.with_name(partial.name + ".json"), max_bytes)
    target = Target(url, params)
    attempt = redirects = 0
    while True:
        try:
            return _attempt(target, transfer, session, options, progress)
        except _HtmlPage as page:
            redirects += 1
            if redirects > options.max_redirects:
                raise DownloadError(f"still an HTML page after {options.max_redirects} confirmation steps") from None
            target = on_html(page.text, page.response)
            check_scheme(target.url)
            logger.debug("following the confirmation step to %s", target.url)
        except _Restart as why:
            logger.info("%s: %s; restarting the download from the first byte", url, why)
            transfer.discard()
            attempt += 1
            _wait_or_give_up(url, f"could not resume ({why})", attempt, options, permanent=False)
        except _TRANSIENT as exc:
            attempt += 1
            wait = exc.wait if isinstance(exc, _Retryable) else None
            _wait_or_give_up(url, _describe(exc), attempt, options, permanent=_is_unknown_host(exc), wait=wait)
        except requests.RequestException as exc:  # redirect loops, other schemes, bad encodings, bad URLs
            raise DownloadError(_describe(exc)) from None


class _Transfer:
    """The partial file of one download and what is kept beside it to resume it safely."""

    def __init__(self, partial: Path, resume_record: Path, max_bytes: int) -> None:
        self.partial, self.resume_record, self.max_bytes = partial, resume_record, max_bytes

    def resumable(self) -> tuple[int, str | None]:
        """(bytes to resume from, the If-Range validator); (0, None) when the partial cannot be resumed."""
        size = resumable_size(self.partial)
        validator = self._validator()
        if size and validator is None:
            logger.info("%s: no ETag or Last-Modified kept for it; restarting from zero", self.partial.name)
            self.discard()
            return 0, None
        return size, validator if size else None

    def _validator(self) -> str | None:
        try:
            kept = json.loads(self.resume_record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = kept.get("validator") if isinstance(kept, dict) else None
        return value if isinstance(value, str) and value and len(value) < 1024 else None

    def remember(self, response: requests.Response) -> None:
        """Keep the response's strong ETag (else Last-Modified), so a resume can say If-Range."""
        etag = response.headers.get("ETag", "")
        validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified", "")
        remove_path(self.resume_record)
        if not validator:
            return
        try:
            with open_partial(self.resume_record, append=False) as sink:
                sink.write(json.dumps({"validator": validator}).encode("utf-8"))
        except OSError as exc:
            remove_path(self.resume_record)
            if is_disk_full(exc):
                raise disk_full(self.partial.parent, None) from exc
            raise

    def discard(self) -> None:
        remove_path(self.partial)
        remove_path(self.resume_record)


def _wait_or_give_up(url: str, reason: str, attempt: int, options: FetchOptions, permanent: bool,
                     wait: float | None = None) -> None:
    """Sleep before the next attempt, or raise when there is no point in another."""
    if permanent:
        raise DownloadError(reason)
    if attempt > options.retries:
        raise DownloadError(f"{reason} (gave up after {attempt} attempts)")
    delay = min(wait, options.max_retry_after) if wait is not None else options.delay(attempt)
    logger.info("%s: %s; retry %d of %d in %.1fs", url, reason, attempt, options.retries, delay)
    time.sleep(delay)


def _describe(exc: BaseException) -> str:
    """A short reason for a failed attempt (not urllib3's 300-character repr)."""
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return "timed out"
    if isinstance(exc, _Retryable):
        return str(exc)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke during the transfer"
    if isinstance(exc, requests.TooManyRedirects):
        return "too many redirects (a redirect loop?)"
    if isinstance(exc, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema)):
        return f"not an http(s) address ({str(exc)[:120]}); only http and https are followed"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "the body is not in the encoding its headers claim"
    if isinstance(exc, requests.ConnectionError):
        errno_text = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
        return f"connection failed ({errno_text.group(1).strip() if errno_text else type(exc).__name__})"
    return f"{type(exc).__name__}: {str(exc)[:160]}"


def _is_unknown_host(exc: BaseException) -> bool:
    """A name that does not resolve will not resolve on the next attempt either."""
    text = str(exc)
    return "Name or service not known" in text or "nodename nor servname" in text or "No address associated" in text


def _attempt(
    target: Target, transfer: _Transfer, session: requests.Session, options: FetchOptions, progress: bool
) -> FetchResult:
    """One request: check the answer, then append or write the body to the partial file."""
    offset, validator = transfer.resumable()
    headers = {"Accept-Encoding": "identity"}  # compressed bodies would break sizes and ranges
    if offset and validator:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator
    response = session.get(
        target.url,
        params=target.params,
        headers=headers,
        stream=True,
        timeout=(options.connect_timeout, options.read_timeout),
    )
    with response:
        check_scheme(response.url)
        if response.status_code == 416 and offset:
            complete = _already_complete(response, offset)
            if complete is None:
                raise _Restart("the server refused the range")
            return complete
        _check_status(response)
        resuming = response.status_code == 206
        if resuming:
            _check_content_range(response, offset)
        elif offset:
            logger.info("%s: the file changed or Range is ignored; downloading the whole file again", target.url)
        return _receive(response, transfer, offset if resuming else 0, options, progress)


def _receive(response: requests.Response, transfer: _Transfer, offset: int, options: FetchOptions,
             progress: bool) -> FetchResult:
    expected = _expected_total(response, offset)
    if expected is not None and expected > transfer.max_bytes:
        raise DownloadError(f"the server announces {expected} bytes, more than the {transfer.max_bytes} "
                            "this checkpoint may have; refused before the body")
    with _SpeedWatch(response, options.low_speed_limit, options.low_speed_time) as watch:
        try:
            chunks = response.iter_content(chunk_size=options.chunk_size)
            first = next(chunks, b"")
            if not offset and looks_like_html(first[:SNIFF_BYTES]):
                raise _HtmlPage(_read_page(first, chunks), response)
            if not offset:
                transfer.discard()
                transfer.remember(response)
            written = _write_body(transfer, first, chunks, offset, expected, progress, watch)
        except (_HtmlPage, DownloadError):
            raise
        except Exception:  # the read the watchdog cut fails in whatever way the request layer fails
            if watch.tripped:
                raise _Retryable(watch.tripped) from None
            raise
    if watch.tripped:
        raise _Retryable(watch.tripped)
    if expected is not None and written != expected:
        raise _Retryable(f"the transfer ended at {written} of {expected} bytes")
    return FetchResult(url=response.url, size=written, filename=_content_filename(response))


def _already_complete(response: requests.Response, offset: int) -> FetchResult | None:
    """A 416 answer to ``bytes=<size>-`` means the partial already holds the whole file."""
    match = re.match(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
    if match and int(match.group(1)) == offset:
        return FetchResult(url=response.url, size=offset, filename=_content_filename(response))
    return None


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise _Retryable(f"HTTP {status} {response.reason or ''}".strip(), _retry_after(response))
    if status >= 400:
        raise DownloadError(f"HTTP {status} {response.reason or ''}".strip())
    if status not in (200, 203, 206):
        raise DownloadError(f"unexpected answer HTTP {status}")


def _retry_after(response: requests.Response) -> float | None:
    """The server's ``Retry-After`` in seconds (a number or an HTTP date), if it gave a usable one."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None


def _check_content_range(response: requests.Response, offset: int) -> None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != offset:
        raise _Restart(
            f"the server sent a range other than the one asked for ({response.headers.get('Content-Range')})"
        )


def _read_page(first: bytes, chunks: Iterator[bytes]) -> str:
    body = bytearray(first)
    for chunk in chunks:
        body.extend(chunk)
        if len(body) > MAX_HTML_BYTES:
            break
    return body.decode("utf-8", "replace")


def _expected_total(response: requests.Response, offset: int) -> int | None:
    """Bytes the partial file should hold at the end, when the server says."""
    length = response.headers.get("Content-Length", "").strip()
    if not length.isdigit() or response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    return offset + int(length)


class _SpeedWatch:
    """curl's low-speed limit: cut the connection when under ``limit`` bytes/s for ``seconds`` in a row.

    A trickling server keeps every single read within the read timeout, and a
    read of one chunk blocks until the chunk is full; so a watchdog thread
    measures the bytes written and closes the response from outside, which
    makes the blocked read fail at once.
    """

    def __init__(self, response: requests.Response, limit: int, seconds: float) -> None:
        self.response, self.limit, self.seconds = response, limit, seconds
        self.window_start, self.window_bytes = time.monotonic(), 0
        self.tripped = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _SpeedWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()

    def add(self, count: int) -> None:
        self.window_bytes += count

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self.seconds / 4)):
            elapsed = time.monotonic() - self.window_start
            if elapsed < self.seconds:
                continue
            if self.window_bytes < self.limit * elapsed:
                self.tripped = (f"too slow: {self.window_bytes / elapsed:.0f} bytes/s for {elapsed:.0f} s, under "
                                f"the {self.limit} bytes/s minimum")
                _abort(self.response)
                return
            self.window_start, self.window_bytes = time.monotonic(), 0


def _abort(response: requests.Response) -> None:
    """Cut a response's connection so that a read blocked in another thread fails at once.

    Closing the response alone does not wake a thread blocked in ``recv``;
    shutting the socket down does.  http.client keeps the socket only as the
    file object it reads from, so the descriptor is duplicated to reach it.
    """
    reader: Any = getattr(getattr(response.raw, "_fp", None), "fp", None)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        with socket.socket(fileno=os.dup(reader.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


def _write_body(transfer: _Transfer, first: bytes, chunks: Iterator[bytes], offset: int, expected: int | None,
                progress: bool, watch: _SpeedWatch) -> int:
    """Write the body to the partial (no link followed), within the size cap; the watch sees every byte."""
    from tqdm import tqdm

    show = progress and sys.stderr.isatty()
    bar = tqdm(total=expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
               desc=transfer.partial.name.split(".")[0][:30], disable=not show, leave=False)
    written = offset
    try:
        with open_partial(transfer.partial, append=bool(offset)) as sink, bar:
            for chunk in _with_first(first, chunks):
                written = _write_chunk(sink, chunk, written, transfer)
                bar.update(len(chunk))
                watch.add(len(chunk))
            sink.flush()
    except OSError as exc:
        if is_disk_full(exc):
            transfer.discard()  # a partial that filled the disk would make every later try fail at once
            raise disk_full(transfer.partial.parent, expected) from exc
        raise
    return written


def _with_first(first: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from chunks


def _write_chunk(sink: BinaryIO, chunk: bytes, written: int, transfer: _Transfer) -> int:
    if written + len(chunk) > transfer.max_bytes:
        transfer.discard()
        raise DownloadError(f"the body grew past {transfer.max_bytes} bytes, more than this checkpoint may have; "
                            "refused (the partial file is removed)")
    sink.write(chunk)
    return written + len(chunk)


def _content_filename(response: requests.Response) -> str | None:
    """The file name from a Content-Disposition header, when it is a plain file name; else None."""
    header = response.headers.get("Content-Disposition", "")
    match = re.search(r"filename\*\s*=\s*[^']*''([^;]+)", header, re.IGNORECASE)
    name = None
    if match:
        name = unquote(match.group(1).strip().strip('"'))
    else:
        match = re.search(r'filename\s*=\s*"([^"]+)"|filename\s*=\s*([^;]+)', header, re.IGNORECASE)
        if match:
            name = (match.group(1) or match.group(2)).strip()
    return name if name is not None and is_plain_name(name) else None
