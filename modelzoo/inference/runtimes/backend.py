"""The contract of a compiled backend: build an artifact from an ONNX file, and open it as a :class:`Runtime`."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from modelzoo.inference.runtimes.base import Runtime
from modelzoo.inference.runtimes.onnx_file import require


class Backend:
    """One compiled runtime (ONNX Runtime, OpenVINO, TensorRT).

    Attributes:
        name: the ``backend=`` value.
        package: the Python package it needs.
        extra: the ``reid-modelzoo`` extra that installs it.
        artifact: the file, in the artifact's folder, that :meth:`open` reads.
    """

    name = ""
    package = ""
    extra = ""
    artifact = ""

    def require(self) -> None:
        """Raise, naming the extra to install, when the package is missing.

        Raises:
            BackendUnavailableError: the package is not installed.
        """
        require(self.package, extra=self.extra, what=f"backend={self.name!r}")

    def version(self) -> str:
        """The installed package's version (part of an artifact's cache key)."""
        return str(getattr(importlib.import_module(self.package), "__version__", "unknown"))

    def build(self, onnx_path: Path, folder: Path, precision: str, device: torch.device, max_batch: int) -> Path:
        """Compile ``onnx_path`` into ``folder``; returns the artifact's path."""
        raise NotImplementedError

    def open(self, artifact: Path, precision: str, device: torch.device) -> Runtime:
        """The artifact, ready to run."""
        raise NotImplementedError
