"""``hf://owner/repo/path/in/repo[@revision]`` sources, through huggingface_hub.

``hf_hub_download`` keeps its own cache (with its own locks and resumable
downloads) and honours ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT``; this module
only parses our URL form, asks for the file (from the local Hugging Face
cache only when offline) and turns its errors into :class:`DownloadError`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelzoo.errors import DownloadError

SCHEME = "hf://"


@dataclass(frozen=True)
class HfLocation:
    """A file in a Hugging Face Hub model repository."""

    repo_id: str
    filename: str
    revision: str | None


def parse_hf_url(url: str) -> HfLocation:
    """Split ``hf://owner/repo/path/in/repo[@revision]``.

    Raises:
        DownloadError: not of that form.
    """
    if not url.startswith(SCHEME):
        raise DownloadError(f"{url} is not an hf:// URL")
    rest = url[len(SCHEME) :]
    revision = None
    head, at, tail = rest.rpartition("@")
    if at and head.count("/") >= 2:  # a revision may itself hold slashes (refs/pr/1)
        rest, revision = head, tail
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts) or revision == "":
        raise DownloadError(f"{url}: expected hf://owner/repo/path/in/repo[@revision]")
    return HfLocation(repo_id="/".join(parts[:2]), filename="/".join(parts[2:]), revision=revision)


def _quiet_tqdm_class() -> type:
    from tqdm.auto import tqdm

    class QuietTqdm(tqdm):  # huggingface_hub takes a class, not a flag
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return QuietTqdm


def fetch_hf(
    url: str,
    *,
    offline: bool,
    progress: bool = False,
    endpoint: str | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """The path of the file in the Hugging Face cache, downloading it when needed.

    Args:
        url: ``hf://owner/repo/path/in/repo[@revision]``.
        offline: use only the local Hugging Face cache (never the network).
        progress: let huggingface_hub show its progress bar.
        endpoint: another Hub endpoint; default: ``HF_ENDPOINT`` (read now), else the Hub.
        cache_dir: another Hugging Face cache folder (tests); default: its own.

    Raises:
        DownloadError: the repository, revision or file does not exist, or
            is not cached while offline, or the transfer failed.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError  # also in older releases

    from modelzoo.config import hf_endpoint

    location = parse_hf_url(url)
    endpoint = endpoint or hf_endpoint()
    quiet: dict[str, Any] = {}
    if not progress and "tqdm_class" in inspect.signature(hf_hub_download).parameters:  # newer releases only
        quiet["tqdm_class"] = _quiet_tqdm_class()
    try:
        path = hf_hub_download(
            location.repo_id,
            location.filename,
            revision=location.revision,
            local_files_only=offline,
            endpoint=endpoint,
            cache_dir=cache_dir,
            **quiet,
        )
    except LocalEntryNotFoundError as exc:
        if offline:
            raise DownloadError("not in the local Hugging Face cache (offline mode)") from exc
        raise DownloadError(f"Hugging Face Hub unreachable ({_first_line(exc)})") from exc
    except HfHubHTTPError as exc:
        raise DownloadError(f"Hugging Face Hub: {_first_line(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise DownloadError(f"Hugging Face Hub: {_first_line(exc)}") from exc
    return Path(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
