"""The PyTorch backend: the network itself, BatchNorm-folded, channels-last, under ``inference_mode``.

On a CPU the network is almost all of the cost, so the speed-ups are in how
it runs: BatchNorm layers are folded into the convolutions before them
(``torch.fx``; a model that cannot be traced runs unfolded), activations use
the channels-last memory format that oneDNN's CPU convolutions take as it is,
and reduced precision runs as autocast where the hardware has it
(:mod:`modelzoo.inference.precision`).  Folding changes the features by float
rounding only (relative differences around 1e-6).
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import nullcontext
from typing import Any, ContextManager

import torch
from torch import nn

from modelzoo.inference.precision import check_precision
from modelzoo.inference.runtimes.base import Runtime

logger = logging.getLogger(__name__)

FOLDED_INTO = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)  # the layers torch.fx folds a BatchNorm into


def autocast_context(device: torch.device, precision: str) -> ContextManager:
    """The autocast context for ``precision`` on ``device`` (none for fp32).

    Raises:
        ValueError: an unknown precision.
        PrecisionError: a precision the device cannot run natively.
    """
    check_precision("torch", device, precision)
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(device: torch.device, precision: str) -> bool:
    """Whether channels-last is the faster memory format for this device and precision.

    oneDNN's CPU convolutions prefer it at every precision; on CUDA it pays
    with the tensor cores of reduced precision only.
    """
    return device.type == "cpu" or precision != "fp32"


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode ``model`` with each BatchNorm folded into the convolution (or linear layer) before it.

    Uses ``torch.fx``, which folds a pair only when the BatchNorm is the
    layer's sole consumer.  The model is returned unchanged when it cannot be
    traced symbolically (data-dependent control flow, e.g. HACNN), when a
    layer is called more than once (folding would change every call), and
    when it is in training mode.

    Args:
        model: a network in eval mode; it is not modified.
    """
    if model.training:
        return model
    from torch import fx
    from torch.fx.experimental.optimization import fuse

    try:
        traced = fx.symbolic_trace(model)  # shares the layers with model; fuse copies before changing them
    except Exception as exc:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        logger.debug("BatchNorm folding skipped for %s: %s", type(model).__name__, exc)
        return model
    if _folds_a_shared_layer(traced):
        logger.debug("BatchNorm folding skipped for %s: a layer is called more than once", type(model).__name__)
        return model
    return fuse(traced, inplace=False, no_trace=True)


def _folds_a_shared_layer(traced: Any) -> bool:
    """Whether a convolution/linear layer followed by a BatchNorm is also called elsewhere.

    Folding replaces the layer itself, so every other call of it would
    change too.  (Shared layers that no BatchNorm follows, like OSNet's
    channel gate, are harmless.)
    """
    layers = dict(traced.named_modules())
    calls = Counter(node.target for node in traced.graph.nodes if node.op == "call_module")
    for node in traced.graph.nodes:
        if node.op != "call_module" or not isinstance(layers[node.target], nn.modules.batchnorm._BatchNorm):
            continue
        source = node.args[0]
        if getattr(source, "op", None) == "call_module" and isinstance(layers[source.target], FOLDED_INTO):
            if calls[source.target] > 1:
                return True
    return False


def prepare_model(
    model: nn.Module, device: torch.device, *, channels_last: bool, fold: bool
) -> nn.Module:
    """``model`` in eval mode, optionally BatchNorm-folded, on ``device`` in the memory format asked for.

    Without folding the model itself is moved (like ``model.to``); with
    folding, the folded copy is moved and ``model`` stays where it was (in
    eval mode).
    """
    model.eval()
    runnable = fold_batchnorm(model) if fold else model
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return runnable.to(device).to(memory_format=memory_format)


class TorchRuntime(Runtime):
    """A zoo network run by PyTorch: folded (optionally), channels-last where faster, autocast at reduced precision.

    Args:
        model: the network (put in eval mode; moved to ``device`` unless
            folding made a copy).
        device: where it runs.
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` where native.
        channels_last: the memory format (None: see :func:`use_channels_last`).
        fold_bn: fold BatchNorm into a copy of the network first.
    """

    backend = "torch"

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32", *,
                 channels_last: bool | None = None, fold_bn: bool = True) -> None:
        autocast_context(device, precision)  # refuses a precision before anything is prepared
        self.device, self.precision = device, precision
        self.channels_last = use_channels_last(device, precision) if channels_last is None else channels_last
        self.network = prepare_model(model, device, channels_last=self.channels_last, fold=fold_bn)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast_context(self.device, self.precision):
            return self.network(pixels).float()
