"""reid-modelzoo: torchreid's person re-ID model zoo, verified, in one line.

>>> import modelzoo
>>> model = modelzoo.get("resnet50_fc512", "market1501")   # doctest: +SKIP
>>> modelzoo.list_models("osnet*")                          # doctest: +SKIP

Heavy modules (torch, torchvision) are imported on first use, so that
``import modelzoo`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "get": "modelzoo.hub",
    "load_weights": "modelzoo.hub",
    "build": "modelzoo.hub",
    "transforms": "modelzoo.hub",
    "list_models": "modelzoo.manifest",
    "download": "modelzoo.fetch",
    "evaluate": "modelzoo.evaluation.pipeline",
    "FeatureExtractor": "modelzoo.extractor",
    "LoadReport": "modelzoo.loading",
}

__all__ = [*_EXPORTS, "info", "errors", "__version__"]


def info(name: str) -> Any:
    """The manifest record of a model (``modelzoo.manifest.ModelRecord``).

    ``info('resnet50_fc512').checkpoints['market1501'].rank1 == 90.8``.
    A ``name.dataset`` suffix is ignored; use ``.checkpoints[dataset]``.
    """
    from modelzoo.manifest import resolve_name

    return resolve_name(name.split(".", 1)[0])


def __getattr__(name: str) -> Any:
    if name == "errors":
        return import_module("modelzoo.errors")
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'modelzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
