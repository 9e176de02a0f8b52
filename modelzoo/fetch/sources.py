"""The ordered list of places a checkpoint can come from.

First each mirror base (``MODELZOO_MIRROR`` or the ``mirrors=`` argument) (``http(s)://`` or ``file://`` URLs,
or plain local folders), under which the checkpoint's manifest ``filename``
is looked up directly; then the manifest's own sources in order.  Hosts
died three times in this zoo's life (torchreid-zoo-facts.md 0.2), so the
order is the user's to choose first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlparse
from urllib.request import url2pathname

from modelzoo.manifest import Checkpoint

HTTP = "http"
FILE = "file"
GDRIVE = "gdrive"
HF = "hf"


@dataclass(frozen=True)
class Candidate:
    """One place to try, in the order they are tried.

    Attributes:
        location: a URL (http, Drive, hf://) or a local path for ``file``.
        kind: ``http``, ``file``, ``gdrive`` or ``hf``.
        format: what this place serves according to the manifest (``zip`` or
            ``checkpoint``); the bytes are checked anyway.
        origin: ``mirror`` (MODELZOO_MIRROR) or ``manifest``.
        problem: set when the candidate cannot be tried at all (an unknown
            mirror scheme); the reason is reported with the others.
        sha256, size: of this place's file, where the manifest knows them.
        status: what the manifest knows of this place (``live``, ``dead``, ...;
            ``unknown`` for mirrors).
    """

    location: str
    kind: str
    format: str
    origin: str
    problem: str | None = None
    sha256: str | None = None
    size: int | None = None
    status: str = "unknown"

    @property
    def touches_network(self) -> bool:
        """True for every kind except local files (hf:// may use its local cache)."""
        return self.kind not in (FILE, HF)

    def describe(self) -> str:
        """A one-line name for logs and error messages."""
        names = {HTTP: "", FILE: "file ", GDRIVE: "Google Drive ", HF: ""}
        prefix = "mirror " if self.origin == "mirror" else ""
        return f"{prefix}{names[self.kind]}{self.location}"


def mirror_candidate(base: str, filename: str, fmt: str) -> Candidate:
    """The candidate for ``filename`` under one ``MODELZOO_MIRROR`` base (a malformed base is a failed one)."""
    try:
        scheme = urlparse(base).scheme.lower()
    except ValueError as exc:
        return Candidate(base, HTTP, fmt, "mirror", problem=f"not a valid mirror address ({exc})")
    if scheme in ("http", "https"):
        return Candidate(f"{base.rstrip('/')}/{quote(filename)}", HTTP, fmt, "mirror")
    if scheme == "file":
        folder = Path(url2pathname(unquote(urlparse(base).path)))
        return Candidate(str(folder / filename), FILE, fmt, "mirror")
    if scheme == "" or re.fullmatch(r"[a-z]", scheme):  # a plain path (or a Windows drive letter)
        return Candidate(str(Path(base).expanduser() / filename), FILE, fmt, "mirror")
    return Candidate(
        base, HTTP, fmt, "mirror", problem=f"unsupported mirror scheme {scheme!r} (use http(s)://, file:// or a folder)"
    )


def candidates(checkpoint: Checkpoint, mirrors: Sequence[str] = ()) -> list[Candidate]:
    """Every place to try for ``checkpoint``, mirrors first.

    Args:
        checkpoint: the manifest entry.
        mirrors: mirror bases, in order (``FetchSettings.mirrors``).

    Returns:
        Candidates in the order to try them.
    """
    found = [mirror_candidate(base, checkpoint.filename, checkpoint.format) for base in mirrors]
    for source in checkpoint.sources:
        found.append(Candidate(source.url, source.kind, source.format, "manifest", sha256=source.sha256,
                               size=source.size, status=source.status))
    return found
