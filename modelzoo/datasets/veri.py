"""VeRi-776 in fast-reid's layout: Market-1501's scheme with other folder names and 3-digit cameras.

Layout (fastreid-zoo facts, section 5)::

    veri/{image_train,image_query,image_test}/*.jpg      e.g. 0002_c002_00030600_0.jpg

The name gives the vehicle id and the camera (``c001`` .. ``c020``); the
protocol is Market-1501's (a gallery image of the query's id from the query's
camera is dropped).  1,678 query and 11,579 gallery images.
"""

from __future__ import annotations

import re

from modelzoo.datasets._locate import LayoutSpec
from modelzoo.datasets.market import MarketStyleConfig

SPLIT_FOLDERS = {"train": "image_train", "query": "image_query", "gallery": "image_test"}

VERI = MarketStyleConfig(
    name="veri",
    layout=LayoutSpec(
        display_name="VeRi-776",
        dataset_dir="veri",
        versioned_dirs=(),
        markers=(SPLIT_FOLDERS["query"], SPLIT_FOLDERS["gallery"], SPLIT_FOLDERS["train"]),
        image_dirs=frozenset(SPLIT_FOLDERS.values()),
        search_hint="veri",
        expected_layout="<data_root>/veri/{image_train,image_query,image_test}/*.jpg",
        obtain_advice="VeRi-776 is distributed by its authors on request: unpack its image_train, "
        "image_query and image_test folders inside <data_root>/veri/.",
    ),
    num_cameras=20,
    max_pid=776,
    example_name="0002_c002_00030600_0.jpg",
    unversioned_note=None,
    split_folders=SPLIT_FOLDERS,
    file_name=re.compile(r"^(\d+)_c(\d{3})"),
)
