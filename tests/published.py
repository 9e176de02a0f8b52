"""Checkpoints of the zoo written to a mirror in their real format, with the model they hold."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

import modelzoo
from modelzoo.testing.checkpoints import write_for_checkpoint
from modelzoo import manifest
from modelzoo.testing.weights import deterministic_state_dict


def published(name: str, dataset: str, mirror: Path, seed: int = 0):
    """Write a checkpoint of ``name.dataset`` to the mirror; the reference model and its state."""
    checkpoint = manifest.resolve_checkpoint(name, dataset)
    reference = modelzoo.build(checkpoint.model, num_classes=checkpoint.num_classes)
    state = deterministic_state_dict(reference, seed=seed)
    reference.load_state_dict(state)
    write_for_checkpoint(checkpoint, mirror, state, vintage="bare", compression=zipfile.ZIP_STORED)
    return reference.eval(), state


def images(n: int = 2) -> torch.Tensor:
    """``n`` random inputs at the usual 256x128."""
    return torch.randn(n, 3, 256, 128, generator=torch.Generator().manual_seed(1))
