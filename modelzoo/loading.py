"""Strict loading of a state dict into a model, with a report of what happened.

torchreid's ``load_pretrained_weights`` keeps whatever matches and only warns
(user-pain rows 6-7).  Here any mismatch is an error listing the keys; the one
exception is asked for by the caller: the classifier keys the manifest
declares may be dropped when a different number of classes is requested.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
from torch import nn

from modelzoo.errors import CheckpointMismatchError

logger = logging.getLogger(__name__)

_MAX_LISTED = 10


@dataclass(frozen=True)
class LoadReport:
    """What loading a state dict into a model did."""

    matched: tuple[str, ...]
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    shape_mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    dropped: tuple[str, ...] = field(default=())  # classifier keys dropped on request

    @property
    def ok(self) -> bool:
        """True when every key matched (keys dropped on request aside)."""
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def summary(self) -> str:
        """One line for logs."""
        text = f"{len(self.matched)} tensors loaded"
        if self.dropped:
            text += f"; classifier dropped on request ({', '.join(self.dropped)})"
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                text += f"; {len(keys)} {label}: {_listing(keys)}"
        if self.shape_mismatched:
            shown = [f"{k} {tuple(want)} vs {tuple(got)}" for k, want, got in self.shape_mismatched]
            text += f"; {len(shown)} with another shape: {_listing(shown)}"
        return text


def _listing(items: Iterable[str]) -> str:
    items = list(items)
    more = f" ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def compare(model: nn.Module, state: Mapping[str, torch.Tensor], drop: Iterable[str] = ()) -> LoadReport:
    """Compare ``state`` with ``model``'s own state dict, ignoring the keys in ``drop``."""
    drop = set(drop)
    own = {k: v for k, v in model.state_dict().items() if k not in drop}
    given = {k: v for k, v in state.items() if k not in drop}
    shape_mismatched = tuple(
        (k, tuple(own[k].shape), tuple(given[k].shape))
        for k in own
        if k in given and own[k].shape != given[k].shape
    )
    bad_shape = {k for k, _, _ in shape_mismatched}
    return LoadReport(
        matched=tuple(k for k in own if k in given and k not in bad_shape),
        missing=tuple(k for k in own if k not in given),
        unexpected=tuple(k for k in given if k not in own),
        shape_mismatched=shape_mismatched,
        dropped=tuple(sorted(drop & set(state))),
    )


def load_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, drop: Iterable[str] = (), what: str = "checkpoint"
) -> LoadReport:
    """Load ``state`` into ``model``; raise :class:`CheckpointMismatchError` on any mismatch.

    Args:
        model: the freshly built architecture.
        state: the checkpoint's state dict.
        drop: keys deliberately not loaded (the declared classifier, when the
            caller asked for another number of classes); the model keeps its
            own initial values for them.
        what: how to name the state dict in messages.
    """
    drop = tuple(drop)
    report = compare(model, state, drop)
    if not report.ok:
        raise CheckpointMismatchError(
            f"{what} does not fit {type(model).__name__}: {report.summary()}. "
            "Nothing was loaded. Check that the checkpoint belongs to this architecture "
            "(`modelzoo info NAME`), or pass num_classes=K to replace only the classifier."
        )
    kept = {k: v for k, v in state.items() if k not in drop}
    own = model.state_dict()
    own.update(kept)
    model.load_state_dict(own, strict=True)
    logger.info("%s: %s", what, report.summary())
    return report
