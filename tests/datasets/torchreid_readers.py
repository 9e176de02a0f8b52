"""torchreid's own dataset readers, loaded without torchreid's package, as an oracle.

``market1501.py``, ``dukemtmcreid.py`` and ``msmt17.py`` import one thing:
``torchreid.reid.data.datasets.dataset.ImageDataset``, whose module pulls in
torchreid's download and image utilities.  The readers only call three of its
methods, so while their files load, a tiny stand-in for that module sits in
``sys.modules`` (and is removed right after): the folder logic and the file
name / list parsing that run are torchreid's own.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from tests import oracle

_STUBBED = (
    "torchreid",
    "torchreid.reid",
    "torchreid.reid.data",
    "torchreid.reid.data.datasets",
    "torchreid.reid.data.datasets.dataset",
)
_LOADED: dict[str, ModuleType] = {}


class StandInImageDataset:
    """The part of torchreid's ``ImageDataset`` its readers use: keep the lists, check paths."""

    def __init__(self, train, query, gallery, **kwargs):
        self.train, self.query, self.gallery = train, query, gallery

    def download_dataset(self, dataset_dir, dataset_url):
        """No download: tests only read folders that exist."""

    def check_before_run(self, required_files):
        for path in required_files:
            if not os.path.exists(path):
                raise RuntimeError(f'"{path}" is not found')


@contextmanager
def _stand_in_base_module() -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in _STUBBED}
    for name in _STUBBED:
        sys.modules[name] = ModuleType(name)
    sys.modules[_STUBBED[-1]].ImageDataset = StandInImageDataset  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load(file_name: str) -> ModuleType:
    """Load ``torchreid/reid/data/datasets/image/<file_name>`` against the stand-in base class."""
    if file_name in _LOADED:
        return _LOADED[file_name]
    root = oracle.torchreid_root()
    if root is None:
        raise ModuleNotFoundError("torchreid 0.2.5 (the reference oracle) is not installed")
    path = root / "data" / "datasets" / "image" / file_name
    spec = importlib.util.spec_from_file_location(f"_torchreid_oracle_image_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with _stand_in_base_module():
        spec.loader.exec_module(module)
    _LOADED[file_name] = module
    return module
