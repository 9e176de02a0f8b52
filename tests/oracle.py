"""Load modules of torchreid 0.2.5 (PyPI) as a *reference oracle* for tests.

``import torchreid`` pulls its whole tree (data loaders, OpenCV, gdown, ...).
The files we compare against -- the model definitions, ``metrics/rank.py``,
``metrics/distance.py``, ``utils/rerank.py`` -- only need torch and NumPy, so
this helper loads a single file by path under a private module name without
running torchreid's package ``__init__``.  torchreid is a test dependency
only (the ``test`` extra), never a runtime one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def torchreid_root() -> Path | None:
    """Folder of the installed ``torchreid/reid`` package, or None."""
    spec = importlib.util.find_spec("torchreid")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "reid"
    return root if root.is_dir() else None


def load(relative: str) -> ModuleType:
    """Load ``torchreid/reid/<relative>`` (e.g. ``models/resnet.py``) in isolation."""
    root = torchreid_root()
    if root is None:
        raise ModuleNotFoundError(
            "torchreid 0.2.5 (the reference oracle) is not installed: "
            "pip install -e '.[test]'"
        )
    path = root / relative
    name = "_torchreid_oracle_." + relative.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
