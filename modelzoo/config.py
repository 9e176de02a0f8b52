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
``HF_ENDPOINT``             the Hugging Face Hub or a mirror of it
                            (``https://hf-mirror.com``) for ``hf://`` sources.
``MODELZOO_MAX_DOWNLOAD_``  ceiling in bytes of a download whose size the
``BYTES``                   manifest does not give (default 2 GiB).
``MODELZOO_LOCK_TIMEOUT``   seconds to wait for another process fetching the
                            same checkpoint (default 600).
``RANK``, ``WORLD_SIZE``,   set by ``torchrun`` for each process: distributed
``LOCAL_RANK``              feature extraction shards the images by them
                            (``MASTER_ADDR``/``MASTER_PORT`` are read by
                            ``torch.distributed`` itself).
==========================  ===================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from modelzoo.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
DEFAULT_MAX_DOWNLOAD_BYTES = 2 << 30  # no re-ID checkpoint of the zoos is near 1 GiB
DEFAULT_LOCK_TIMEOUT = 600.0  # seconds another process may hold a checkpoint's lock before we give up

DEFAULT_GDRIVE_URL = "https://drive.google.com/uc"
PACKAGE_MANIFEST_DIR = Path(__file__).resolve().parent / "manifest_data"
SOURCE_MANIFEST_DIR = Path(__file__).resolve().parent.parent / "manifest"


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is neither true nor false: use one of 1, true, yes, on / 0, false, no, off")


def _number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:  # also refuses nan
        raise ConfigError(f"{name}={raw!r} must be a number >= {minimum:g}")
    return value


def expanded_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` with ``~`` expanded; a ``~user`` that names nobody is an error, not a folder named ``~user``."""
    try:
        expanded = Path(path).expanduser()
    except RuntimeError:  # Python >= 3.11 raises for a user that does not exist
        expanded = Path(path)
    if str(expanded).startswith("~"):
        raise ConfigError(f"{what} {str(path)!r} starts with a '~user' that does not exist here: give a full path")
    return expanded


def home() -> Path:
    """Cache root: ``MODELZOO_HOME``, else ``$XDG_CACHE_HOME/reid-modelzoo``.

    Raises:
        ConfigError: a ``~user`` that does not exist.
    """
    explicit = os.environ.get("MODELZOO_HOME")
    if explicit:
        return expanded_folder(explicit, "MODELZOO_HOME")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return expanded_folder(xdg, "XDG_CACHE_HOME") / "reid-modelzoo"


def checkpoints_dir() -> Path:
    """Folder holding verified checkpoints, one sub-folder per model."""
    return home() / "checkpoints"


def env_mirrors() -> list[str]:
    """Bases from ``MODELZOO_MIRROR``, in order, blanks dropped."""
    return _split_bases(os.environ.get("MODELZOO_MIRROR", ""))


def env_offline() -> bool:
    """True when ``MODELZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value.

    Raises:
        ConfigError: a value that is neither true nor false (``maybe``).
    """
    return _flag("MODELZOO_OFFLINE") or _flag("HF_HUB_OFFLINE")


def max_download_bytes() -> int:
    """Largest download accepted when the manifest gives no size (``MODELZOO_MAX_DOWNLOAD_BYTES``, default 2 GiB)."""
    return int(_number("MODELZOO_MAX_DOWNLOAD_BYTES", DEFAULT_MAX_DOWNLOAD_BYTES, 1))


def lock_timeout() -> float:
    """Seconds to wait for another process holding a checkpoint's lock (``MODELZOO_LOCK_TIMEOUT``, default 600)."""
    return _number("MODELZOO_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, 0)


def gdrive_url() -> str:
    """Google Drive download endpoint (``MODELZOO_GDRIVE_URL`` overrides)."""
    return os.environ.get("MODELZOO_GDRIVE_URL", DEFAULT_GDRIVE_URL).rstrip("/")


def hf_endpoint() -> str | None:
    """``HF_ENDPOINT``, the Hugging Face Hub (or mirror, e.g. ``https://hf-mirror.com``) to ask; None: the Hub.

    Read at each call, so setting it after ``import huggingface_hub`` still counts.
    """
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None


def manifest_dir() -> Path:
    """Folder of manifest files: an override, the installed copy, or the source tree."""
    override = os.environ.get("MODELZOO_MANIFEST_DIR")
    if override:
        return Path(override)
    if PACKAGE_MANIFEST_DIR.is_dir():
        return PACKAGE_MANIFEST_DIR
    return SOURCE_MANIFEST_DIR


@dataclass(frozen=True)
class FetchSettings:
    """Where checkpoints are cached and fetched from: the arguments a caller gave, the environment otherwise.

    Attributes:
        cache_dir: the cache root (``MODELZOO_HOME``); checkpoints live in its ``checkpoints/`` folder.
        mirrors: bases tried before the manifest's sources (``MODELZOO_MIRROR``).
        offline: never touch the network (``MODELZOO_OFFLINE`` / ``HF_HUB_OFFLINE``).
        gdrive_url: the Google Drive download endpoint (``MODELZOO_GDRIVE_URL``).
        max_download_bytes: the ceiling of a download whose size the manifest
            does not give (``MODELZOO_MAX_DOWNLOAD_BYTES``).
        lock_timeout: seconds to wait for another process holding a
            checkpoint's lock (``MODELZOO_LOCK_TIMEOUT``).
    """

    cache_dir: Path
    mirrors: tuple[str, ...]
    offline: bool
    gdrive_url: str
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT

    @property
    def checkpoints_dir(self) -> Path:
        """Folder holding verified checkpoints, one sub-folder per model."""
        return self.cache_dir / "checkpoints"


def fetch_settings(
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors: str | Sequence[str] | None = None,
    offline: bool | None = None,
) -> FetchSettings:
    """The settings of one call: each argument given wins over its environment variable.

    Args:
        cache_dir: the cache root (default ``MODELZOO_HOME``, else the XDG cache folder).
        mirrors: mirror bases, a sequence or one comma-separated string
            (default ``MODELZOO_MIRROR``); an empty sequence means none.
        offline: never use the network (default ``MODELZOO_OFFLINE`` or ``HF_HUB_OFFLINE``).
    """
    if isinstance(mirrors, str):
        mirrors = _split_bases(mirrors)
    return FetchSettings(
        cache_dir=expanded_folder(cache_dir, "cache_dir") if cache_dir is not None else home(),
        mirrors=tuple(mirrors) if mirrors is not None else tuple(env_mirrors()),
        offline=bool(offline) if offline is not None else env_offline(),
        gdrive_url=gdrive_url(),
        max_download_bytes=max_download_bytes(),
        lock_timeout=lock_timeout(),
    )


def _split_bases(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


@dataclass(frozen=True)
class DistributedEnv:
    """This process's place in a ``torchrun`` launch."""

    rank: int
    world_size: int
    local_rank: int


def distributed_env() -> DistributedEnv | None:
    """``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by ``torchrun``; None when ``WORLD_SIZE`` is not set.

    A missing ``RANK`` means 0 and a missing ``LOCAL_RANK`` the rank (one node).

    Raises:
        ConfigError: a variable that is not a whole number, or a rank outside the world.
    """
    if not os.environ.get("WORLD_SIZE"):
        return None
    world_size = _whole_number("WORLD_SIZE", "1")
    rank = _whole_number("RANK", "0")
    local_rank = _whole_number("LOCAL_RANK", str(rank))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} does not fit WORLD_SIZE={world_size}; launch with torchrun")
    return DistributedEnv(rank=rank, world_size=world_size, local_rank=local_rank)


def _whole_number(name: str, default: str) -> int:
    raw = os.environ.get(name) or default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a whole number; launch with torchrun") from None
