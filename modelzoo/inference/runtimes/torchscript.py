"""A TorchScript file (``modelzoo export --format torchscript``) as a runtime."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from modelzoo.inference.runtimes.base import Runtime


class TorchScriptRuntime(Runtime):
    """A TorchScript module, loaded onto ``device``; float32.

    Loading TorchScript runs no Python code from the file, but it is a
    program: only open files you exported yourself.
    """

    backend = "torchscript"

    def __init__(self, path: Path, device: torch.device) -> None:
        self.device = device
        with warnings.catch_warnings():  # torch's "torch.jit is deprecated": TorchScript is the format asked for
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
            self.module = torch.jit.load(str(path), map_location=device).eval()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(pixels.to(self.device)).float()
