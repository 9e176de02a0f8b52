"""reid-modelzoo: person re-identification model zoos, verified, in one line.

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
    "get": "modelzoo.models",
    "load_weights": "modelzoo.models",
    "build": "modelzoo.models",
    "transforms": "modelzoo.models",
    "model_info": "modelzoo.models",
    "ModelInfo": "modelzoo.models",
    "list_models": "modelzoo.manifest",
    "list_checkpoints": "modelzoo.manifest",
    "checkpoint_info": "modelzoo.manifest",
    "download": "modelzoo.models",
    "evaluate": "modelzoo.evaluation.pipeline",
    "extract_features": "modelzoo.inference",
    "FeatureExtractor": "modelzoo.inference",
    "LoadReport": "modelzoo.loading",
}

__all__ = [*_EXPORTS, "info", "errors", "__version__"]


def info(name: str) -> Any:
    """The manifest record of a model (``modelzoo.manifest.ModelRecord``).

    ``info('resnet50_fc512').checkpoints['market1501'].rank1 == 90.8``.  A
    checkpoint's own record is :func:`checkpoint_info` (``checkpoint_info('osnet_x1_0.msmt17')``);
    ``info`` refuses a ``name.tag`` rather than drop the tag.

    Raises:
        UnknownModelError: unknown model, or a ``name.tag`` (says to use ``checkpoint_info``).
    """
    from modelzoo.errors import UnknownModelError
    from modelzoo.manifest import resolve_name, split_name

    model, tag = split_name(name)
    if tag is not None:
        raise UnknownModelError(
            f"info() takes a model name; {name!r} names a checkpoint: use modelzoo.checkpoint_info({name!r}) "
            f"or modelzoo.info({model!r}).checkpoints[{tag!r}]"
        )
    return resolve_name(model)


def __getattr__(name: str) -> Any:
    if name == "errors":
        return import_module("modelzoo.errors")
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'modelzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
