"""Readers for Market-1501, DukeMTMC-reID, MSMT17, VeRi-776, VehicleID and VERI-Wild in their real on-disk layouts.

>>> split = read_dataset("market1501", "~/datasets")   # doctest: +SKIP
>>> split.query[0]                                      # doctest: +SKIP
ImageRecord(path=PosixPath('.../query/0001_c1s1_001051_00.jpg'), pid=1, camid=0)

``data_root`` may be torchreid's root (holding ``market1501/``,
``dukemtmc-reid/``, ``msmt17/``) or fast-reid's (``veri/``, ``vehicleid/``,
``VERI-Wild/``), the dataset's own folder, or the versioned folder itself.
VehicleID and VERI-Wild are read at one test size (``split="small"``, ...);
VehicleID's gallery is drawn at random per trial (:func:`read_trials`).  :func:`check_layout` (and ``doctor.doctor`` for the CLI) explain what is wrong
with a folder and how to fix it; :mod:`modelzoo.testing.synthetic` writes
small datasets in the same layouts.
"""

from modelzoo.datasets._base import ImageRecord, ReIDSplit
from modelzoo.datasets._registry import DATASET_NAMES, DEFAULT_TRIALS, has_random_gallery, planned_trials, read_dataset, read_trials
# The ``doctor`` function stays in its module: exporting it here would shadow
# the submodule ``modelzoo.datasets.doctor`` (use ``from modelzoo.datasets.doctor import doctor``).
from modelzoo.datasets.doctor import Finding, check_layout, format_findings

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_TRIALS",
    "Finding",
    "ImageRecord",
    "ReIDSplit",
    "check_layout",
    "format_findings",
    "has_random_gallery",
    "planned_trials",
    "read_dataset",
    "read_trials",
]
