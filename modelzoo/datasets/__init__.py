"""Readers for Market-1501, DukeMTMC-reID and MSMT17 in their real on-disk layouts.

>>> split = read_dataset("market1501", "~/datasets")   # doctest: +SKIP
>>> split.query[0]                                      # doctest: +SKIP
ImageRecord(path=PosixPath('.../query/0001_c1s1_001051_00.jpg'), pid=1, camid=0)

``data_root`` may be torchreid's root (holding ``market1501/``,
``dukemtmc-reid/``, ``msmt17/``), the dataset's own folder, or the versioned
folder itself.  :func:`check_layout` (and ``doctor.doctor`` for the CLI) explain what is wrong
with a folder and how to fix it; :mod:`modelzoo.testing.synthetic` writes
small datasets in the same layouts.
"""

from modelzoo.datasets._base import ImageRecord, ReIDSplit
from modelzoo.datasets._registry import DATASET_NAMES, read_dataset
# The ``doctor`` function stays in its module: exporting it here would shadow
# the submodule ``modelzoo.datasets.doctor`` (use ``from modelzoo.datasets.doctor import doctor``).
from modelzoo.datasets.doctor import Finding, check_layout, format_findings

__all__ = [
    "DATASET_NAMES",
    "Finding",
    "ImageRecord",
    "ReIDSplit",
    "check_layout",
    "format_findings",
    "read_dataset",
]
