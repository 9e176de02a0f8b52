"""The format layer: bytes and paths in, state dicts out.

It knows every file format the zoos use and nothing about where files come
from or where they are kept:

* :mod:`~modelzoo.formats.sniff`: what a file is (HTML page, zip archive,
  torch checkpoint, safetensors);
* :mod:`~modelzoo.formats.pickled`: ``torch.load(..., weights_only=True)`` of
  every serialization (Python-2 pickles, pre-1.6 files, NumPy scalars);
* :mod:`~modelzoo.formats.torchreid`: torchreid's layout (training dict or
  bare state dict, ``module.`` prefixes);
* :mod:`~modelzoo.formats.fastreid`: fast-reid's ``{"model": ...}`` files, each
  era's head keys renamed by a declared table, ``pixel_mean``/``pixel_std`` checked;
* :mod:`~modelzoo.formats.checkpoint_file`: :func:`read_checkpoint`, one
  reader per layout;
* :mod:`~modelzoo.formats.safetensors_file`: the safetensors reader and writer;
* :mod:`~modelzoo.formats.digest`: file hashes and the weights fingerprint.

It imports nothing of the package but :mod:`modelzoo.errors`.
"""

from modelzoo.formats.checkpoint_file import LAYOUTS, CheckpointContent, read_checkpoint, read_state_dict
from modelzoo.formats.digest import sha256_file, weights_fingerprint
from modelzoo.formats.sniff import ARCHIVE, CHECKPOINT, SAFETENSORS, file_kind, looks_like_html

__all__ = [
    "ARCHIVE",
    "CHECKPOINT",
    "LAYOUTS",
    "SAFETENSORS",
    "CheckpointContent",
    "file_kind",
    "looks_like_html",
    "read_checkpoint",
    "read_state_dict",
    "sha256_file",
    "weights_fingerprint",
]
