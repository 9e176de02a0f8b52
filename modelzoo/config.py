"""Every environment variable and default of reid-modelzoo, read in one place.

Values are read when asked for (not at import time), so tests and users can
change the environment between calls.

==========================  ===================================================
``MODELZOO_HOME``           cache root; default ``$XDG_CACHE_HOME/reid-modelzoo``
                            (``~/.cache/reid-modelzoo`` without XDG).
``MODELZOO_MIRROR``         comma-separated bases tried before the manifest's
                            sources: ``http(s)://`` or ``file://`` URLs, or
                            plain local directories.
``MODELZOO_OFFLINE``        ``1``/``true``/``yes``: never touch the network.
``HF_HUB_OFFLINE``          honoured like ``MODELZOO_OFFLINE``.
``MODELZOO_GDRIVE_URL``     base of the Google Drive download endpoint
                            (tests point it at a loopback server).
``MODELZOO_MANIFEST_DIR``   read the manifest from another folder.
==========================  ===================================================
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}

DEFAULT_GDRIVE_URL = "https://drive.google.com/uc"
PACKAGE_MANIFEST_DIR = Path(__file__).resolve().parent / "manifest_data"
SOURCE_MANIFEST_DIR = Path(__file__).resolve().parent.parent / "manifest"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def home() -> Path:
    """Cache root: ``MODELZOO_HOME``, else ``$XDG_CACHE_HOME/reid-modelzoo``."""
    explicit = os.environ.get("MODELZOO_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "reid-modelzoo"


def checkpoints_dir() -> Path:
    """Folder holding verified checkpoints, one sub-folder per model."""
    return home() / "checkpoints"


def mirrors() -> list[str]:
    """Bases from ``MODELZOO_MIRROR``, in order, blanks dropped."""
    raw = os.environ.get("MODELZOO_MIRROR", "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def offline() -> bool:
    """True when ``MODELZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value."""
    return _flag("MODELZOO_OFFLINE") or _flag("HF_HUB_OFFLINE")


def gdrive_url() -> str:
    """Google Drive download endpoint (``MODELZOO_GDRIVE_URL`` overrides)."""
    return os.environ.get("MODELZOO_GDRIVE_URL", DEFAULT_GDRIVE_URL).rstrip("/")


def manifest_dir() -> Path:
    """Folder of manifest files: an override, the installed copy, or the source tree."""
    override = os.environ.get("MODELZOO_MANIFEST_DIR")
    if override:
        return Path(override)
    if PACKAGE_MANIFEST_DIR.is_dir():
        return PACKAGE_MANIFEST_DIR
    return SOURCE_MANIFEST_DIR
