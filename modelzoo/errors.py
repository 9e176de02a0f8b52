"""Typed errors of reid-modelzoo.

Every error says what went wrong *and* what to do next.  Each one also
subclasses the built-in exception a caller would naturally catch
(``KeyError`` for an unknown name, ``FileNotFoundError`` for a file that is
not cached, ...), so ``except KeyError`` keeps working for code that does not
know about this module.
"""

from __future__ import annotations


class ModelZooError(Exception):
    """Base class of every error raised on purpose by reid-modelzoo."""


class ManifestError(ModelZooError, ValueError):
    """A manifest file is malformed: names the file and the field."""


class UnknownModelError(ModelZooError, KeyError):
    """A model, checkpoint or dataset name that the zoo does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(UnknownModelError):
    """A dataset name that the model has no checkpoint for."""


class DownloadError(ModelZooError, OSError):
    """Every source of a file failed; the message lists each one and why."""


class ChecksumError(DownloadError):
    """A file's size or SHA-256 differs from what was expected."""


class NotCachedError(ModelZooError, FileNotFoundError):
    """Offline mode and the file is not in the cache."""


class UnsafeCheckpointError(ModelZooError, ValueError):
    """A checkpoint whose pickle asks for code beyond plain tensors and numbers."""


class CheckpointFormatError(ModelZooError, ValueError):
    """A file that is not a readable checkpoint (HTML page, truncated, not a state dict)."""


class ArchiveError(ModelZooError, ValueError):
    """A downloaded archive is unsafe or does not hold exactly one weights file."""


class CheckpointMismatchError(ModelZooError, RuntimeError):
    """A state dict does not fit the architecture: lists the offending keys."""


class DatasetLayoutError(ModelZooError, FileNotFoundError):
    """A dataset folder does not have the layout of the real dataset."""


class InsufficientMemoryError(ModelZooError, MemoryError):
    """A computation would need more memory than allowed: names the bytes needed."""
