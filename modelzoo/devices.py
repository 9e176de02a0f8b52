"""What this machine has: devices (None means CUDA when available, else CPU), CPUs, native bf16."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

from modelzoo.errors import DeviceError

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
SUPPORTED_DEVICE_TYPES = ("cpu", "cuda")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> ``cuda`` if available else ``cpu``; 'cpu', 'cuda', 'cuda:N' or a torch.device.

    A bare 'cuda' means the current CUDA device (index resolved, so the model
    and its inputs agree; torchreid PR #511).

    Raises:
        DeviceError: not a device, a device type the package does not run on
            (``mps``, ``xla``, ``meta``, ...), or a CUDA device this machine lacks.
    """
    if device is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"{device!r} is not a device; use 'cpu', 'cuda', 'cuda:N' or a torch.device") from exc
    if resolved.type not in SUPPORTED_DEVICE_TYPES:
        raise DeviceError(f"device {str(device)!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(device)!r} was asked for but CUDA is not available here; use device='cpu'")
        index = torch.cuda.current_device() if resolved.index is None else resolved.index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        resolved = torch.device("cuda", index)
    return resolved


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists a native bf16 instruction set (avx512_bf16 or AMX).

    Returns False where /proc/cpuinfo cannot be read (not Linux).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def cpu_model() -> str:
    """The CPU's model name (for benchmark and verify reports); "unknown" where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"
