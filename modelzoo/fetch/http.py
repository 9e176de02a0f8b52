"""Resumable HTTP downloads into a partial file.

One function, :func:`fetch_url`, streams a URL into a ``*.incomplete`` file
with connect/read timeouts, retries with capped exponential backoff on
connection errors, timeouts and 5xx answers, and resumes with a ``Range``
request from what the partial file already holds.  A server that ignores
``Range`` (200 instead of 206) gets a clean restart.  An HTML page is never
written to the partial file: the caller decides what it means (Google Drive
uses that to follow its confirmation step).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import requests

from modelzoo.errors import DownloadError
from modelzoo.formats.sniff import SNIFF_BYTES, html_title, looks_like_html

logger = logging.getLogger(__name__)

MAX_HTML_BYTES = 1 << 20  # an interstitial or error page is far smaller


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
        chunk_size: bytes read and written at a time.
        max_redirects: confirmation pages (Google Drive) followed at most.
    """

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    chunk_size: int = 256 << 10
    max_redirects: int = 3

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

    url: str
    size: int
    filename: str | None  # from Content-Disposition, when the server names the file


# An HTML page arrived instead of the file: the handler returns where to ask
# next (Google Drive's confirmation), or raises DownloadError saying what the
# page means.  The default handler always raises.
HtmlHandler = Callable[[str, requests.Response], Target]


class _Retryable(Exception):
    """A failure worth another attempt (5xx, 429, a body cut short)."""


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


def fetch_url(
    url: str,
    partial: Path,
    *,
    session: requests.Session,
    options: FetchOptions,
    params: dict[str, str] | None = None,
    progress: bool = False,
    on_html: HtmlHandler = refuse_html,
) -> FetchResult:
    """Download ``url`` into ``partial``, resuming what it already holds.

    On return ``partial`` holds the whole body.  On a transfer failure it keeps
    what arrived, so a later call resumes.

    Args:
        url: the file's URL.
        partial: the ``*.incomplete`` file beside the cache target.
        session: the requests session (cookies matter for Google Drive).
        options: timeouts, retries and backoff.
        params: query parameters.
        progress: show a progress bar (only when stderr is a terminal).
        on_html: called when an HTML page arrives instead of the file.

    Raises:
        DownloadError: a 4xx answer, an HTML page, or retries exhausted.
    """
    target = Target(url, params)
    attempt = redirects = 0
    while True:
        try:
            return _attempt(target, partial, session, options, progress)
        except _HtmlPage as page:
            redirects += 1
            if redirects > options.max_redirects:
                raise DownloadError(f"still an HTML page after {options.max_redirects} confirmation steps") from None
            target = on_html(page.text, page.response)
            logger.debug("following the confirmation step to %s", target.url)
        except _Restart as why:
            logger.info("%s: %s; restarting the download from the first byte", url, why)
            partial.unlink(missing_ok=True)
            attempt += 1
            _wait_or_give_up(url, f"could not resume ({why})", attempt, options, permanent=False)
        except _TRANSIENT as exc:
            attempt += 1
            _wait_or_give_up(url, _describe(exc), attempt, options, permanent=_is_unknown_host(exc))


def _wait_or_give_up(url: str, reason: str, attempt: int, options: FetchOptions, permanent: bool) -> None:
    """Sleep before the next attempt, or raise when there is no point in another."""
    if permanent:
        raise DownloadError(reason)
    if attempt > options.retries:
        raise DownloadError(f"{reason} (gave up after {attempt} attempts)")
    wait = options.delay(attempt)
    logger.info("%s: %s; retry %d of %d in %.1fs", url, reason, attempt, options.retries, wait)
    time.sleep(wait)


def _describe(exc: BaseException) -> str:
    """A short reason for a failed attempt (not urllib3's 300-character repr)."""
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return "timed out"
    if isinstance(exc, _Retryable):
        return str(exc)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke during the transfer"
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return f"connection failed ({errno_text.group(1).strip() if errno_text else type(exc).__name__})"


def _is_unknown_host(exc: BaseException) -> bool:
    """A name that does not resolve will not resolve on the next attempt either."""
    text = str(exc)
    return "Name or service not known" in text or "nodename nor servname" in text or "No address associated" in text


def _attempt(
    target: Target, partial: Path, session: requests.Session, options: FetchOptions, progress: bool
) -> FetchResult:
    """One request: check the answer, then append or write the body to ``partial``."""
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # compressed bodies would break sizes and ranges
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = session.get(
        target.url,
        params=target.params,
        headers=headers,
        stream=True,
        timeout=(options.connect_timeout, options.read_timeout),
    )
    with response:
        if response.status_code == 416 and offset:
            complete = _already_complete(response, offset, target)
            if complete is None:
                raise _Restart("the server refused the range")
            return complete
        _check_status(response)
        resuming = response.status_code == 206
        if resuming:
            _check_content_range(response, offset)
        elif offset:
            logger.info("%s ignores Range requests; downloading the whole file again", target.url)
        chunks = response.iter_content(chunk_size=options.chunk_size)
        first = next(chunks, b"")
        if not resuming and looks_like_html(first[:SNIFF_BYTES]):
            raise _HtmlPage(_read_page(first, chunks), response)
        expected = _expected_total(response, offset if resuming else 0)
        written = _write_body(partial, first, chunks, resuming, expected, progress, options)
        if expected is not None and written != expected:
            raise _Retryable(f"the transfer ended at {written} of {expected} bytes")
        return FetchResult(url=response.url, size=written, filename=_content_filename(response))


def _already_complete(response: requests.Response, offset: int, target: Target) -> FetchResult | None:
    """A 416 answer to ``bytes=<size>-`` means the partial already holds the whole file."""
    match = re.match(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
    if match and int(match.group(1)) == offset:
        return FetchResult(url=target.url, size=offset, filename=_content_filename(response))
    return None


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise _Retryable(f"HTTP {status} {response.reason or ''}".strip())
    if status >= 400:
        raise DownloadError(f"HTTP {status} {response.reason or ''}".strip())
    if status not in (200, 203, 206):
        raise DownloadError(f"unexpected answer HTTP {status}")


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
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit() or response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    return offset + int(length)


def _write_body(
    partial: Path,
    first: bytes,
    chunks: Iterator[bytes],
    resuming: bool,
    expected: int | None,
    progress: bool,
    options: FetchOptions,
) -> int:
    """Write the body; the partial file is only opened once real bytes arrived."""
    from tqdm import tqdm

    initial = partial.stat().st_size if resuming else 0
    show = progress and sys.stderr.isatty()
    bar = tqdm(
        total=expected,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=partial.name.split(".")[0][:30],
        disable=not show,
        leave=False,
    )
    with open(partial, "ab" if resuming else "wb") as sink, bar:
        sink.write(first)
        bar.update(len(first))
        for chunk in chunks:
            sink.write(chunk)
            bar.update(len(chunk))
        sink.flush()
        return sink.tell()


def _content_filename(response: requests.Response) -> str | None:
    """The file name from a Content-Disposition header, if any."""
    header = response.headers.get("Content-Disposition", "")
    match = re.search(r"filename\*\s*=\s*[^']*''([^;]+)", header, re.IGNORECASE)
    if match:
        return unquote(match.group(1).strip().strip('"'))
    match = re.search(r'filename\s*=\s*"([^"]+)"|filename\s*=\s*([^;]+)', header, re.IGNORECASE)
    if match:
        return (match.group(1) or match.group(2)).strip()
    return None
