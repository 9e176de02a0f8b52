"""``modelzoo sources check``: does every source still serve its file?  Asked without downloading it.

Each source gets one bounded request: a one-byte ``Range`` request for http
hosts (following redirects, and Google Drive's confirmation step), the
metadata call for the Hugging Face Hub (``HF_ENDPOINT`` honoured), a stat
for a local mirror.  The answer says whether the file is there, its size
(and whether that matches the manifest), its ETag and Last-Modified.  A
small thread pool asks the sources in parallel, each request with its
timeout.  It is the link-rot check no re-ID zoo runs on itself; run it on a
schedule (see the README).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from modelzoo import __version__
from modelzoo.config import FetchSettings
from modelzoo.errors import DownloadError
from modelzoo.fetch import gdrive, hf
from modelzoo.fetch.http import FetchOptions, Target, check_scheme
from modelzoo.fetch.sources import FILE, GDRIVE, HF, Candidate, candidates
from modelzoo.formats.sniff import SNIFF_BYTES, html_title, looks_like_html
from modelzoo.manifest import Checkpoint

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
PROBE_OPTIONS = FetchOptions(connect_timeout=10.0, read_timeout=20.0, retries=0)


@dataclass(frozen=True)
class SourceProbe:
    """What one source answered.

    Attributes:
        checkpoint: ``name.tag``.
        source: the source, as download errors name it.
        known_status: what the manifest says of it (``live``, ``dead since 2019``, ...).
        ok: the source serves a file of the expected size (where the manifest knows it).
        detail: why not, or ``serves the file``.
        http_status: the final HTTP status (None for the Hub's metadata call and local files).
        size: the file's size, when the source said.
        size_matches: against the manifest's size; None when the manifest has none.
        etag, last_modified: the validators the source gave.
    """

    checkpoint: str
    source: str
    known_status: str
    ok: bool
    detail: str
    http_status: int | None = None
    size: int | None = None
    size_matches: bool | None = None
    etag: str | None = None
    last_modified: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def check_sources(
    checkpoints: Sequence[Checkpoint], settings: FetchSettings, *, workers: int = DEFAULT_WORKERS,
    options: FetchOptions = PROBE_OPTIONS,
) -> list[SourceProbe]:
    """Ask every source (mirrors first, then the manifest's) of ``checkpoints``; one result per source.

    Raises:
        DownloadError: offline mode is on (asking a host is the point of this call).
    """
    if settings.offline:
        raise DownloadError("offline mode is on (MODELZOO_OFFLINE / HF_HUB_OFFLINE): cannot ask any host")
    work = [(checkpoint, candidate) for checkpoint in checkpoints
            for candidate in candidates(checkpoint, settings.mirrors)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda item: _probe(item[0], item[1], settings, options), work))


def working_checkpoints(probes: Sequence[SourceProbe]) -> dict[str, bool]:
    """``name.tag`` -> whether at least one of its sources works, in the order they were probed."""
    result: dict[str, bool] = {}
    for probe in probes:
        result[probe.checkpoint] = result.get(probe.checkpoint, False) or probe.ok
    return result


def _probe(checkpoint: Checkpoint, candidate: Candidate, settings: FetchSettings,
           options: FetchOptions) -> SourceProbe:
    known = _known_status(checkpoint, candidate)
    base: dict[str, Any] = {"checkpoint": checkpoint.name, "source": candidate.describe(), "known_status": known}
    try:
        if candidate.problem:
            raise DownloadError(candidate.problem)
        if candidate.kind == FILE:
            answer = _probe_file(Path(candidate.location))
        elif candidate.kind == HF:
            answer = _probe_hub(candidate.location)
        else:
            answer = _probe_http(candidate, settings, options)
    except (DownloadError, requests.RequestException, OSError, ValueError) as exc:
        return SourceProbe(**base, ok=False, detail=str(exc)[:300] or type(exc).__name__)
    return _judged(base, answer, _expected_size(checkpoint, candidate))


@dataclass(frozen=True)
class _Answer:
    size: int | None
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None


def _judged(base: dict[str, Any], answer: _Answer, expected: int | None) -> SourceProbe:
    matches = None if expected is None or answer.size is None else answer.size == expected
    detail = "serves the file" if matches is not False else \
        f"serves {answer.size} bytes where the manifest expects {expected} (the file changed)"
    return SourceProbe(**base, ok=matches is not False, detail=detail, http_status=answer.http_status,
                       size=answer.size, size_matches=matches, etag=answer.etag, last_modified=answer.last_modified)


def _known_status(checkpoint: Checkpoint, candidate: Candidate) -> str:
    if candidate.origin == "mirror":
        return "mirror"
    source = next((s for s in checkpoint.sources if s.url == candidate.location), None)
    return source.describe_status() if source is not None else "unknown"


def _expected_size(checkpoint: Checkpoint, candidate: Candidate) -> int | None:
    if candidate.size is not None:
        return candidate.size
    return checkpoint.size if checkpoint.size is not None and candidate.format == checkpoint.format else None


def _probe_file(path: Path) -> _Answer:
    if not path.is_file():
        raise DownloadError(f"no such file {path}")
    return _Answer(size=path.stat().st_size)


def _probe_hub(url: str) -> _Answer:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from modelzoo.config import hf_endpoint

    location = hf.parse_hf_url(url)
    endpoint = hf_endpoint()
    file_url = hf_hub_url(location.repo_id, location.filename, revision=location.revision, endpoint=endpoint)
    try:
        metadata = get_hf_file_metadata(file_url, timeout=PROBE_OPTIONS.read_timeout)
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises its own hierarchy; each is this source's failure
        raise DownloadError(f"Hugging Face Hub: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc}") \
            from None
    return _Answer(size=metadata.size, etag=metadata.etag)


def _probe_http(candidate: Candidate, settings: FetchSettings, options: FetchOptions) -> _Answer:
    with requests.Session() as session:
        session.headers["User-Agent"] = f"reid-modelzoo/{__version__} (sources check)"
        if candidate.kind == GDRIVE:
            identifier = gdrive.file_id(candidate.location)
            check_scheme(settings.gdrive_url)
            target = Target(settings.gdrive_url, {"id": identifier, "export": "download"})
            return _ask(session, target, options, lambda page, response: gdrive.confirmation_target(
                page, response, session, identifier))
        check_scheme(candidate.location)
        return _ask(session, Target(candidate.location), options, None)


def _ask(session: requests.Session, target: Target, options: FetchOptions, on_html: Any) -> _Answer:
    """A one-byte Range request; an HTML page is followed once through ``on_html`` (Drive), else refused."""
    for _ in range(options.max_redirects + 1):
        with session.get(target.url, params=target.params, headers={"Range": "bytes=0-0", "Accept-Encoding": "identity"},
                         stream=True, timeout=(options.connect_timeout, options.read_timeout)) as response:
            check_scheme(response.url)
            head = next(response.iter_content(SNIFF_BYTES), b"") if response.status_code < 400 else b""
            if response.status_code >= 400:
                raise DownloadError(f"HTTP {response.status_code} {response.reason or ''}".strip())
            if looks_like_html(head):
                page = head.decode("utf-8", "replace") + response.raw.read(64 << 10, decode_content=True).decode(
                    "utf-8", "replace")
                if on_html is None:
                    raise DownloadError(f"an HTML page ({html_title(page)!r}), not the file")
                target = on_html(page, response)
                continue
            return _Answer(size=_total_size(response), http_status=response.status_code,
                           etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified"))
    raise DownloadError(f"still an HTML page after {options.max_redirects} confirmation steps")


def _total_size(response: requests.Response) -> int | None:
    """The file's size: the total of ``Content-Range`` (206), else ``Content-Length`` (a 200 with the whole file)."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length", "")
    return int(length) if response.status_code == 200 and length.isdigit() else None
