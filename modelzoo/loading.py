"""Strict loading of a state dict into a model, with a report of what happened.

torchreid's ``load_pretrained_weights`` keeps whatever matches and only warns
(user-pain rows 6-7).  Here any mismatch is an error listing the keys; the one
exception is asked for by the caller: the classifier keys the manifest
declares may be dropped when a different number of classes is requested.

Loading can also *adopt* the checkpoint's tensors (``assign=True``) instead of
copying them, into a built model or into one built on the meta device without
initialising it (:func:`uninitialised_build`): random initialisation of
weights that are overwritten at once is most of the cost of building a large
network, and a copy of its weights the rest.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from modelzoo.errors import CheckpointMismatchError

logger = logging.getLogger(__name__)

_MAX_LISTED = 10
_MAX_ITEM_CHARS = 120


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
    """At most ten items, each cut to a readable length (a hostile file's keys can be megabytes long)."""
    items = list(items)
    more = f" ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    shown = [item if len(item) <= _MAX_ITEM_CHARS else item[:_MAX_ITEM_CHARS] + "..." for item in items[:_MAX_LISTED]]
    return ", ".join(shown) + more


def compare(model: nn.Module, state: Mapping[str, torch.Tensor], drop: Iterable[str] = ()) -> LoadReport:
    """Compare ``state`` with ``model``'s own state dict, ignoring the keys in ``drop``."""
    return _compare(model.state_dict(), state, drop)


def _compare(
    model_state: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], drop: Iterable[str]
) -> LoadReport:
    drop = set(drop)
    own = {k: v for k, v in model_state.items() if k not in drop}
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
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    drop: Iterable[str] = (),
    what: str = "checkpoint",
    assign: bool = False,
) -> LoadReport:
    """Load ``state`` into ``model``; raise :class:`CheckpointMismatchError` on any mismatch.

    Args:
        model: the freshly built architecture.
        state: the checkpoint's state dict.
        drop: keys deliberately not loaded (the declared classifier, when the
            caller asked for another number of classes); the model keeps its
            own initial values for them.
        what: how to name the state dict in messages.
        assign: adopt the checkpoint's tensors instead of copying them into
            the model's (no copy; required for a model built on the meta
            device, see :func:`uninitialised_build`).  Each adopted tensor is made
            contiguous, of the model's dtype and with storage of its own, so
            the model trains and moves between devices like a built one; the
            caller must not modify ``state``'s tensors afterwards.

    Raises:
        CheckpointMismatchError: a key missing, unexpected or of another shape
            (keys in ``drop`` aside); nothing is loaded then.
    """
    drop = tuple(drop)
    own = model.state_dict()
    report = _compare(own, state, drop)
    if not report.ok:
        raise CheckpointMismatchError(
            f"{what} does not fit {type(model).__name__}: {report.summary()}. "
            "Nothing was loaded. Check that the checkpoint belongs to this architecture "
            "(`modelzoo info NAME`), or pass num_classes=K to replace only the classifier."
        )
    kept = {k: v for k, v in state.items() if k not in drop}
    own.update(_adoptable(kept, own) if assign else kept)
    model.load_state_dict(own, strict=True, assign=assign)
    logger.info("%s: %s", what, report.summary())
    return report


def _adoptable(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors a model can take over as they are: detached, contiguous, its dtype, no shared storage.

    Copying into a model converts dtype and layout and unties shared storage
    by itself; adopting does not, so it is done here (a no-op, without any
    copy, for the tensors read from the safetensors cache).
    """
    seen: set[int] = set()
    adopted = {}
    for key, value in state.items():
        tensor = value.detach().to(dtype=own[key].dtype).contiguous()
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else 0
        if pointer in seen:
            tensor = tensor.clone()
        elif pointer:
            seen.add(pointer)
        adopted[key] = tensor
    return adopted


# ---------------------------------------------------------------------------
# building without initialising

#: In-place tensor methods that only set values; on a meta tensor there are no
#: values, and torch's meta implementations of the random ones are slow Python.
_VALUE_SETTERS = frozenset(
    {"uniform_", "normal_", "trunc_normal_", "fill_", "zero_", "copy_", "erfinv_", "mul_", "add_", "sub_",
     "div_", "clamp_", "exponential_", "random_", "bernoulli_"}
)
_INIT_MODULE = "torch.nn.init"
_META = torch.device("meta")


def _factories() -> frozenset[Callable]:
    """The tensor factories that module constructors call, made to create meta tensors.

    A factory missing here is harmless: it creates a real CPU tensor, which
    loading replaces like any other (it only costs its initialisation).
    """
    return frozenset(
        {torch.empty, torch.zeros, torch.ones, torch.full, torch.tensor, torch.rand, torch.randn,
         torch.randint, torch.arange, torch.linspace, torch.eye}
    )


class _MetaWithoutInit(TorchFunctionMode):
    """Tensor factories create meta tensors; initialisers of meta tensors do nothing.

    One mode for both jobs (rather than ``torch.device("meta")`` plus a second
    mode): every torch call made while building passes through it, and a
    network like OSNet makes thousands.
    """

    def __init__(self) -> None:
        super().__init__()
        self._factories = _factories()

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        if func in self._factories:
            if kwargs.get("device") is None:
                kwargs["device"] = _META
            return func(*args, **kwargs)
        # torch.nn.init's functions pass their tensor by keyword
        target = args[0] if args else kwargs.get("tensor")
        if isinstance(target, torch.Tensor) and target.is_meta and _sets_values_only(func):
            return target
        return func(*args, **kwargs)


def _sets_values_only(func: Callable) -> bool:
    name = getattr(func, "__name__", "")
    # torch.nn.init's initialisers all end in "_" (its helpers, e.g. calculate_gain, return values)
    return name in _VALUE_SETTERS or (name.endswith("_") and getattr(func, "__module__", None) == _INIT_MODULE)


@contextlib.contextmanager
def uninitialised_build() -> Iterator[None]:
    """Within it, modules are built on the meta device and no weight is initialised.

    Shapes and dtypes are real, values do not exist: every parameter and
    buffer must then be given by :func:`load_strict` with ``assign=True``;
    :func:`meta_tensors` tells whether any was left.  Import the modules that
    define the architecture *before* entering, so that no module-level tensor
    is created on the meta device.
    """
    with _MetaWithoutInit():
        yield


def meta_tensors(model: nn.Module) -> list[str]:
    """Names of the parameters, buffers and plain tensor attributes of ``model`` still on the meta device.

    Non-persistent buffers and tensors kept as plain attributes are not in a
    state dict, so a checkpoint cannot give them values.
    """
    names = [name for name, tensor in model.named_parameters() if tensor.is_meta]
    names += [name for name, tensor in model.named_buffers() if tensor.is_meta]
    for prefix, module in model.named_modules():
        for attribute, value in vars(module).items():
            if isinstance(value, torch.Tensor) and value.is_meta:
                names.append(f"{prefix}.{attribute}" if prefix else attribute)
    return names
