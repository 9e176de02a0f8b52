"""Device selection: None means CUDA when available, else CPU."""

from __future__ import annotations

import torch

from modelzoo.errors import ModelZooError


class DeviceError(ModelZooError, RuntimeError):
    """A device that this machine does not have."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> ``cuda`` if available else ``cpu``; 'cpu', 'cuda', 'cuda:N' or a torch.device.

    A bare 'cuda' means the current CUDA device (index resolved, so the model
    and its inputs agree; torchreid PR #511).
    """
    if device is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"{device!r} is not a device; use 'cpu', 'cuda', 'cuda:N' or a torch.device") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(device)!r} was asked for but CUDA is not available here; use device='cpu'")
        index = torch.cuda.current_device() if resolved.index is None else resolved.index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        resolved = torch.device("cuda", index)
    return resolved
