"""Registry of architecture builders (layers only: no weights, no network).

Each family module decorates its builders with :func:`register`.  Names are
the canonical (seed) names; aliases such as torchreid's ``mobilenetv2_x1_0``
live in the manifest, the one source of truth for names.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register ``fn`` as the builder of architecture ``name``; a duplicate is an error."""

    def decorate(fn: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} is registered twice")
        _BUILDERS[name] = fn
        return fn

    return decorate


def builders() -> dict[str, Builder]:
    """Every registered builder, by canonical name (family modules imported first)."""
    from modelzoo.architectures import _families  # noqa: F401  (registers them)

    return dict(_BUILDERS)
