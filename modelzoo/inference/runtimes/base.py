"""What every inference runtime is: a callable from a preprocessed batch to float32 features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ParityCheck:
    """How a compiled artifact compared with the PyTorch model (float32) on a fixed batch.

    Attributes:
        images: how many images were compared (in batches of several and of one).
        min_cosine: the lowest cosine similarity between a row and PyTorch's.
        threshold: the lowest cosine allowed at this precision.
        max_abs_diff: the largest absolute difference of any feature value.
    """

    images: int
    min_cosine: float
    threshold: float
    max_abs_diff: float

    @property
    def passed(self) -> bool:
        """Whether every row is at least ``threshold`` similar to PyTorch's."""
        return self.min_cosine >= self.threshold

    def summary(self) -> str:
        """One line for a log or a terminal."""
        return (f"equals PyTorch fp32 on {self.images} images: lowest cosine {self.min_cosine:.7f} "
                f"(needs {self.threshold}), max |diff| {self.max_abs_diff:.2e}")


class Runtime:
    """A network ready to run: ``runtime(pixels)`` -> float32 ``(N, D)`` features.

    ``pixels`` is a preprocessed ``(N, 3, H, W)`` float32 batch, which the
    caller puts on :attr:`device` in the memory format :attr:`channels_last`
    says.  Subclasses set the attributes and implement ``__call__``.

    Attributes:
        backend: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"tensorrt"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: where the inputs go.
        channels_last: whether inputs should be channels-last.
        check: the parity check a compiled artifact passed (None for torch).
    """

    backend: str = ""
    precision: str = "fp32"
    device: torch.device = torch.device("cpu")
    channels_last: bool = False
    check: ParityCheck | None = None

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def memory_format(self) -> torch.memory_format:
        """The memory format inputs should have."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        """``"openvino bf16 on cpu"``."""
        return f"{self.backend} {self.precision} on {self.device}"


def as_cpu_array(pixels: torch.Tensor) -> np.ndarray:
    """A batch as the contiguous float32 NumPy array that the CPU runtimes take."""
    return np.ascontiguousarray(pixels.detach().to("cpu", torch.float32).numpy())
