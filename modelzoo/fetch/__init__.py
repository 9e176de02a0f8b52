"""Download, cache, verify and extract checkpoints like a package manager.

Public API (this module only re-exports):

* :func:`download` -- the path of a verified, ready-to-load weights file in
  the cache, fetched from the first source that yields a valid file;
* :func:`load_checkpoint` -- the state dict of a checkpoint, downloaded first
  when needed (read once on a cold download);
* :func:`import_file` -- register a file obtained by hand;
* :func:`cached_path` -- the cached weights file, or None (never downloads);
* :func:`list_cached`, :func:`verify_cached`, :func:`clear_cache` -- the
  cache commands.

Never is a broken file cached: one lock per checkpoint, downloads go to a
partial file beside the target, the size and SHA-256 are checked (against
the manifest, or against the hashes trusted since the first download), the
bytes are read back with ``weights_only=True``, and only then does
``os.replace`` put the weights in place (:mod:`modelzoo.fetch.store`).
"""

from modelzoo.fetch.download import download, import_file, load_checkpoint
from modelzoo.fetch.http import FetchOptions
from modelzoo.fetch.inventory import CacheEntry, cached_path, clear_cache, list_cached, verify_cached
from modelzoo.fetch.store import LoadedCheckpoint, VerifyResult

__all__ = [
    "CacheEntry",
    "FetchOptions",
    "LoadedCheckpoint",
    "VerifyResult",
    "cached_path",
    "clear_cache",
    "download",
    "import_file",
    "list_cached",
    "load_checkpoint",
    "verify_cached",
]
