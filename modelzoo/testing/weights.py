"""Deterministic, non-trivial weights for parity and loading tests.

Every parameter and buffer is set from a generator seeded by ``seed`` and the
key's position, so two models with the same keys get identical tensors (ours
and torchreid's), and nothing keeps its default value.  Scales keep deep
networks numerically tame: conv/linear weights are scaled by fan-in, norm
weights sit around 1, running variances are positive.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def tensor_for(key: str, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A deterministic tensor shaped like ``like`` whose statistics suit ``key``."""
    if not like.is_floating_point():
        return torch.randint(1, 1000, like.shape, generator=generator, dtype=like.dtype)
    shape = like.shape
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return torch.rand(shape, generator=generator) * 0.5 + 0.75
    if leaf == "running_mean":
        return torch.randn(shape, generator=generator) * 0.1
    if leaf == "bias":
        return torch.randn(shape, generator=generator) * 0.05
    if like.dim() <= 1:  # norm weights (BN, IN, LayerNorm scale)
        return torch.rand(shape, generator=generator) * 0.5 + 0.75
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=generator) * (1.0 / math.sqrt(fan_in))


def deterministic_state_dict(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full state dict for ``model`` whose values depend only on keys, shapes and ``seed``.

    Names of one tensor of the model (a module registered under several
    names, as fast-reid's v0.1.1 MGN shares one GeM among 8 branches) get one
    tensor too: the first name's.
    """
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    first_of: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for key, value in model.state_dict().items():
        identity = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if value.numel() and identity in first_of:
            state[key] = state[first_of[identity]]
            continue
        first_of[identity] = key
        state[key] = tensor_for(key, value, generator).to(value.dtype)
    return state


def fill_deterministic_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Load :func:`deterministic_state_dict` into ``model`` strictly; returns the model."""
    model.load_state_dict(deterministic_state_dict(model, seed), strict=True)
    return model
