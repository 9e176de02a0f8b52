"""The reference state-dict specification of torchreid's architectures.

``tests/data/torchreid_state_dicts.json`` is a copy of
``shared/reference/torchreid-state-dicts.json``: keys, shapes and dtypes of
each architecture as torchreid 0.2.5 builds it with ``num_classes=751``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SPEC_PATH = Path(__file__).resolve().parent.parent / "data" / "torchreid_state_dicts.json"

# torchreid's factory for each torchreid name: (file under torchreid/reid/, attribute).
ORACLE_FACTORIES = {
    "resnet50": ("models/resnet.py", "resnet50"),
    "resnet50_fc512": ("models/resnet.py", "resnet50_fc512"),
    "densenet121_fc512": ("models/densenet.py", "densenet121_fc512"),
    "se_resnet50_fc512": ("models/senet.py", "se_resnet50_fc512"),
    "shufflenet": ("models/shufflenet.py", "shufflenet"),
    "squeezenet1_0_fc512": ("models/squeezenet.py", "squeezenet1_0_fc512"),
    "mobilenetv2_x1_0": ("models/mobilenetv2.py", "mobilenetv2_x1_0"),
    "mobilenetv2_x1_4": ("models/mobilenetv2.py", "mobilenetv2_x1_4"),
    "resnet50mid": ("models/resnetmid.py", "resnet50mid"),
    "mlfn": ("models/mlfn.py", "mlfn"),
    "hacnn": ("models/hacnn.py", "HACNN"),
    "osnet_x1_0": ("models/osnet.py", "osnet_x1_0"),
    "osnet_x0_75": ("models/osnet.py", "osnet_x0_75"),
    "osnet_x0_5": ("models/osnet.py", "osnet_x0_5"),
    "osnet_x0_25": ("models/osnet.py", "osnet_x0_25"),
    "osnet_ibn_x1_0": ("models/osnet.py", "osnet_ibn_x1_0"),
    "osnet_ain_x1_0": ("models/osnet_ain.py", "osnet_ain_x1_0"),
    "osnet_ain_x0_75": ("models/osnet_ain.py", "osnet_ain_x0_75"),
    "osnet_ain_x0_5": ("models/osnet_ain.py", "osnet_ain_x0_5"),
    "osnet_ain_x0_25": ("models/osnet_ain.py", "osnet_ain_x0_25"),
}


@lru_cache(maxsize=1)
def spec_by_name() -> dict[str, dict]:
    """Spec records keyed by the seed (canonical) name."""
    data = json.loads(SPEC_PATH.read_text())
    return {record["seed_name"]: record for record in data["models"]}


def names() -> list[str]:
    """Every canonical architecture name of the spec, in file order."""
    return list(spec_by_name())
