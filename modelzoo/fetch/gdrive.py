"""Google Drive downloads: the confirmation step, quota and "can't scan" pages.

Drive answers a download of a large file with an HTML interstitial ("Google
Drive can't scan this file for viruses") holding a form, a ``confirm=``
token or a ``download_warning`` cookie that must be sent back to get the
bytes; when too many people downloaded a file it answers, with status 200,
a quota page.  Users of torchreid and BoxMOT lost hours to both (user-pain
rows 4 and 5): here each page is recognised and reported for what it is.

The Drive endpoint is an argument (``MODELZOO_GDRIVE_URL`` by default) so
tests can point it at a loopback server.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import requests

from modelzoo.config import DEFAULT_GDRIVE_URL, DEFAULT_MAX_DOWNLOAD_BYTES
from modelzoo.errors import DownloadError
from modelzoo.fetch.http import FetchOptions, FetchResult, Target, check_scheme, fetch_url
from modelzoo.formats.sniff import html_title

_ID_IN_PATH = re.compile(r"/(?:file/)?d/([A-Za-z0-9_-]{10,})")
_QUOTA_MARKERS = (
    "too many users have viewed or downloaded this file",
    "download quota",
    "quota exceeded",
    "downloadquotaexceeded",
)
_CANT_SCAN_MARKERS = ("can't scan this file", "can&#39;t scan this file", "cannot scan this file")
_NO_ACCESS_MARKERS = ("you need access", "request access", "sign in", "accounts.google.com/servicelogin")


def file_id(url: str) -> str:
    """The Drive file id of a ``uc?id=``, ``open?id=`` or ``/file/d/<id>/view`` URL.

    Raises:
        DownloadError: the URL holds no file id.
    """
    parsed = urlparse(url)
    ids = parse_qs(parsed.query).get("id")
    if ids:
        return ids[0]
    match = _ID_IN_PATH.search(parsed.path)
    if match:
        return match.group(1)
    raise DownloadError(f"{url} is not a Google Drive file link (no file id)")


def fetch_gdrive(
    url: str,
    partial: Path,
    *,
    session: requests.Session,
    options: FetchOptions,
    progress: bool = False,
    endpoint: str = DEFAULT_GDRIVE_URL,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    resume_record: Path | None = None,
) -> FetchResult:
    """Download a Google Drive file into ``partial``, following the confirmation step.

    Args:
        url: a Drive link from the manifest (``https://drive.google.com/uc?id=<id>``).
        partial: the ``*.incomplete`` file beside the cache target.
        session: a requests session (Drive's cookie must persist between requests).
        options: timeouts, retries, backoff.
        progress: show a progress bar on a terminal.
        endpoint: Drive's download endpoint (``FetchSettings.gdrive_url``).
        max_bytes, resume_record: as :func:`~modelzoo.fetch.http.fetch_url`.

    Raises:
        DownloadError: quota exceeded, no access, Drive's page not understood,
            or the transfer failed.
    """
    identifier = file_id(url)
    try:
        check_scheme(endpoint)
    except DownloadError as exc:
        raise DownloadError(f"MODELZOO_GDRIVE_URL: {exc}") from None
    params = {"id": identifier, "export": "download"}
    return fetch_url(
        endpoint,
        partial,
        session=session,
        options=options,
        params=params,
        progress=progress,
        on_html=lambda page, response: confirmation_target(page, response, session, identifier),
        max_bytes=max_bytes,
        resume_record=resume_record,
    )


def confirmation_target(page: str, response: requests.Response, session: requests.Session, identifier: str) -> Target:
    """Where Drive's interstitial page says to ask for the real file.

    Tries, in order: the download form (newer Drive), a link carrying
    ``confirm=`` (older Drive), a ``confirm=`` token anywhere in the page,
    and the ``download_warning`` cookie.

    Raises:
        DownloadError: the page is a quota page, asks to sign in, or holds
            no way to confirm.
    """
    if _is_quota_page(page):
        raise DownloadError(describe_page(page))
    form = _download_form(page, response.url)
    if form is not None:
        return form
    link = re.search(r'href="([^"]*confirm=[^"]+)"', page)
    if link:
        return Target(urljoin(response.url, html.unescape(link.group(1))))
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if token:
        return Target(response.url.split("?")[0], {"id": identifier, "export": "download", "confirm": token.group(1)})
    for name, value in session.cookies.items():
        if name.startswith("download_warning") and value:
            return Target(response.url.split("?")[0], {"id": identifier, "export": "download", "confirm": value})
    raise DownloadError(describe_page(page))


def _download_form(page: str, base_url: str) -> Target | None:
    """The form of the "can't scan for viruses" page, with its hidden fields."""
    for match in re.finditer(r"<form\b([^>]*)>(.*?)</form>", page, re.IGNORECASE | re.DOTALL):
        attributes, body = match.groups()
        action = re.search(r'action="([^"]+)"', attributes)
        if not action or ("download-form" not in attributes and "download" not in action.group(1)):
            continue
        fields = {}
        for tag in re.finditer(r"<input\b([^>]*)>", body, re.IGNORECASE):
            name = re.search(r'name="([^"]+)"', tag.group(1))
            value = re.search(r'value="([^"]*)"', tag.group(1))
            if name and 'type="hidden"' in tag.group(1).replace("'", '"'):
                fields[html.unescape(name.group(1))] = html.unescape(value.group(1) if value else "")
        return Target(urljoin(base_url, html.unescape(action.group(1))), fields or None)
    return None


def _is_quota_page(page: str) -> bool:
    text = page.lower()
    return any(marker in text for marker in _QUOTA_MARKERS)


def describe_page(page: str) -> str:
    """Say what a Drive HTML page means, for the error listing every source."""
    text = page.lower()
    if _is_quota_page(page):
        return (
            "Google Drive quota exceeded: too many users downloaded this file recently "
            "(Drive lifts the limit within 24 hours)"
        )
    if any(marker in text for marker in _CANT_SCAN_MARKERS):
        return (
            "Google Drive can't scan this file for viruses and asked for a confirmation, "
            "but its page held no confirmation link (Drive changed its page?)"
        )
    if any(marker in text for marker in _NO_ACCESS_MARKERS):
        return "Google Drive asks to sign in: the file is not public (or was removed)"
    return f"Google Drive answered with an HTML page ({html_title(page)!r}) instead of the file"
