"""Which backend runs which precision on which device: the one place that says yes or no.

``"fp32"`` is float32 everywhere (the published setting).  Reduced precision
is used only where the hardware runs it natively, and refused elsewhere with
the reason: bf16 on CPUs with ``avx512_bf16`` or AMX (emulated bf16 is slower
than fp32) and on CUDA devices that support it; fp16 on CUDA.  ONNX Runtime's
CPU provider has no fast bf16 or fp16 kernels, so it runs fp32 only.
"""

from __future__ import annotations

import torch

from modelzoo.devices import cpu_has_native_bf16
from modelzoo.errors import PrecisionError

PRECISIONS = ("fp32", "bf16", "fp16")
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
#: The devices each backend runs on.
BACKEND_DEVICES = {"torch": ("cpu", "cuda"), "onnxruntime": ("cpu", "cuda"), "openvino": ("cpu",),
                   "tensorrt": ("cuda",)}


def check_backend(backend: str, device: torch.device) -> None:
    """Refuse an unknown backend, or one that does not run on ``device``.

    Raises:
        ValueError: an unknown backend, or a device the backend does not run on.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if device.type not in BACKEND_DEVICES[backend]:
        hint = "use device='cuda'" if backend == "tensorrt" else "use device='cpu' or another backend"
        raise ValueError(f"backend {backend!r} runs on {' or '.join(BACKEND_DEVICES[backend])}, not on "
                         f"{device.type}; {hint}")


def check_precision(backend: str, device: torch.device, precision: str) -> None:
    """Refuse a precision that ``backend`` cannot run natively on ``device``, saying why.

    Raises:
        ValueError: an unknown backend or precision (or a device the backend
            does not run on).
        PrecisionError: a known precision this backend and device cannot run natively.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    check_backend(backend, device)
    if precision == "fp32":
        return
    reason = _refusal(backend, device, precision)
    if reason:
        raise PrecisionError(f"precision={precision!r} is refused with backend={backend!r} on {device.type}: "
                             f"{reason}")


def _refusal(backend: str, device: torch.device, precision: str) -> str | None:
    if backend == "onnxruntime":
        return "ONNX Runtime runs float32 only here; use precision='fp32', or backend='openvino' for bf16"
    if device.type == "cpu":
        if precision == "fp16":
            return "fp16 needs a CUDA device; on the CPU use precision='bf16' (where native) or 'fp32'"
        if not cpu_has_native_bf16():
            return ("this CPU has no native bf16 instructions (avx512_bf16 or AMX), where bf16 is emulated and "
                    "slower than fp32; use precision='fp32'")
        return None
    if precision == "bf16" and (backend == "tensorrt" or not torch.cuda.is_bf16_supported()):
        return "use precision='fp16' on this GPU"
    return None
