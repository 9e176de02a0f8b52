"""Every exception reid-modelzoo raises on purpose, in one place.

Every error says what went wrong *and* what to do next.  Each one also
subclasses the built-in exception a caller would naturally catch
(``KeyError`` for an unknown name, ``FileNotFoundError`` for a file that is
not cached, ...), so ``except KeyError`` keeps working for code that does not
know about this module.

This module imports nothing: every other part of the package may use it.
"""

from __future__ import annotations


class ModelZooError(Exception):
    """Base class of every error raised on purpose by reid-modelzoo."""


class ManifestError(ModelZooError, ValueError):
    """A manifest file is malformed: names the file and the field."""


class UnknownNameError(ModelZooError, KeyError):
    """A name the zoo does not know: a model, a checkpoint of a model, or a dataset."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownModelError(UnknownNameError):
    """A model name (or alias) that is not in the zoo; the message suggests the closest."""


class UnknownCheckpointError(UnknownNameError):
    """A model has no checkpoint of that key (``resnet50.veri``); the message lists the ones it has."""


class UnknownDatasetError(UnknownNameError):
    """A dataset name that is not one of the datasets the package reads."""


class DownloadError(ModelZooError, OSError):
    """Every source of a file failed; the message lists each one and why."""


class ChecksumError(DownloadError):
    """A file's size or SHA-256 differs from what was expected."""


class NotCachedError(ModelZooError, FileNotFoundError):
    """Offline mode and the file is not in the cache."""


class CacheError(ModelZooError, OSError):
    """The cache cannot be used as it is: unwritable, full, locked too long, or a damaged trust record.

    The message names the folder or file and the fix.
    """


class ConfigError(ModelZooError, ValueError):
    """An environment variable (or setting) with a value the package cannot use; names the allowed values."""


class UsageError(ModelZooError, ValueError):
    """A command-line value that cannot work, found before any work is done (exit code 2)."""


class UnsafeCheckpointError(ModelZooError, ValueError):
    """A checkpoint whose pickle asks for code beyond plain tensors and numbers."""


class CheckpointFormatError(ModelZooError, ValueError):
    """A file that is not a readable checkpoint (HTML page, truncated, not a state dict)."""


class SafetensorsFormatError(CheckpointFormatError):
    """A file that is not a well-formed safetensors file (bad header, offsets or dtype)."""


class ArchiveError(ModelZooError, ValueError):
    """A downloaded archive is unsafe or does not hold exactly one weights file."""


class CheckpointMismatchError(ModelZooError, RuntimeError):
    """A state dict does not fit the architecture: lists the offending keys."""


class DatasetLayoutError(ModelZooError, FileNotFoundError):
    """A dataset folder does not have the layout of the real dataset."""


class ImageReadError(ModelZooError, OSError):
    """An image file that cannot be decoded (empty, truncated, not an image); names the file."""


class InsufficientMemoryError(ModelZooError, MemoryError):
    """A computation would need more memory than allowed: names the bytes needed."""


class DeviceError(ModelZooError, RuntimeError):
    """A device (or a precision on a device) that this machine does not have."""


class DistributedError(ModelZooError, RuntimeError):
    """Distributed extraction failed on some rank, or the ranks disagree."""


class ExportError(ModelZooError, RuntimeError):
    """An exported file does not compute what the PyTorch model computes (nothing was kept)."""


class PrecisionError(ModelZooError, ValueError):
    """A precision the chosen backend and device cannot run natively (refused, never emulated slowly)."""


class BackendUnavailableError(ModelZooError, ImportError):
    """An inference backend whose package (an optional extra) is not installed, or that cannot run here."""


class RuntimeCheckError(ModelZooError, RuntimeError):
    """A compiled runtime artifact does not compute what the PyTorch model computes (nothing was kept)."""


def one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception from another library, on one line and at most 200 characters.

    For the messages of errors that wrap a third-party failure (exporters,
    compilers), whose own messages can run to pages.
    """
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
