"""Every one of fast-reid's 41 release files fits its builder: keys, shapes and classifier size load strictly.

:data:`RELEASED_FILES` is what the manifest records per file (builder,
kwargs, classes, test input size); the key layout of each comes from
fast-reid's own era code (``tests/data/fastreid_era/``), with the file's
classifier size.
"""

from __future__ import annotations

import pytest
import torch

from modelzoo.architectures import builders
from modelzoo.formats.fastreid import read_fastreid_state_dict
from modelzoo.loading import meta_tensors, uninitialised_build
from tests.architectures.fastreid_era import PIXEL_MEAN, PIXEL_STD, decode_layout, era_records

MARKET, DUKE, MSMT = 751, 702, 1041
PERSON_SIZE = {"bot": (256, 128), "agw": (256, 128), "sbs": (384, 128), "mgn": (384, 128)}
BACKBONE_FILE_NAMES = {"r50": "R50", "r50_ibn": "R50-ibn", "s50": "S50", "r101_ibn": "R101-ibn"}


def _released_files() -> dict[str, dict]:
    """The 41 release files: builder, kwargs, classes, test input size, and the stored era data that describes them."""
    files = {}
    for dataset, classes in (("market", MARKET), ("duke", DUKE), ("msmt", MSMT)):
        for method in ("bot", "agw", "sbs"):
            for backbone, file_backbone in BACKBONE_FILE_NAMES.items():
                name = f"{method}_{backbone}"
                files[f"{dataset}_{method}_{file_backbone}.pth"] = {
                    "builder": name, "kwargs": {"era": "0.1.1"}, "num_classes": classes,
                    "input_size": PERSON_SIZE[method], "data": ("0.1.1", name)}  # fmt: skip
        if dataset != "msmt":  # MSMT17 MGN has no file
            files[f"{dataset}_mgn_R50-ibn.pth"] = {
                "builder": "mgn_r50_ibn", "kwargs": {"era": "0.1.1"}, "num_classes": classes,
                "input_size": PERSON_SIZE["mgn"], "data": ("0.1.1", "mgn_r50_ibn")}  # fmt: skip
    files["veri_sbs_R50-ibn.pth"] = {"builder": "sbs_r50_ibn", "kwargs": {"era": "0.1.1"}, "num_classes": 576,
                                     "input_size": (256, 256), "data": ("0.1.1", "veri_sbs_r50_ibn")}  # fmt: skip
    files["vehicleid_bot_R50-ibn.pth"] = {
        "builder": "bot_r50_ibn", "kwargs": {"era": "0.1.1", "pool": "gem_learned"}, "num_classes": 13164,
        "input_size": (256, 256), "data": ("0.1.1", "vehicleid_bot_r50_ibn")}  # fmt: skip
    files["veriwild_bot_R50-ibn.pth"] = {
        "builder": "bot_r50_ibn", "kwargs": {"era": "1.0", "pool": "gem_fixed"}, "num_classes": 30671,
        "input_size": (256, 256), "data": ("1.0", "veriwild_bot_r50_ibn")}  # fmt: skip
    return files


RELEASED_FILES = _released_files()



def test_the_release_table_has_41_files():
    assert len(RELEASED_FILES) == 41


# Without the slow mark: each classifier size and each distinct builder call once.
QUICK = ("market_bot_R50.pth", "duke_mgn_R50-ibn.pth", "msmt_agw_S50.pth", "veri_sbs_R50-ibn.pth",
         "vehicleid_bot_R50-ibn.pth", "veriwild_bot_R50-ibn.pth")  # fmt: skip


@pytest.mark.parametrize(
    "file_name", [pytest.param(name, marks=[] if name in QUICK else [pytest.mark.slow]) for name in RELEASED_FILES]
)
def test_each_release_file_layout_loads_strictly(file_name):
    """Its classifier size included (Market 751, Duke 702, MSMT17 1041, VeRi 576, VehicleID 13164, VERI-Wild 30671)."""
    entry = RELEASED_FILES[file_name]
    data_era, config = entry["data"]
    record = era_records(data_era)["configs"][config]
    state = {}
    for key, shape, dtype in decode_layout(record["layout"]):
        if key.endswith("classifier.weight"):
            shape = [entry["num_classes"], shape[1]]
        state[key] = torch.empty(shape, dtype=getattr(torch, dtype))  # values do not matter here
    state.update(pixel_mean=PIXEL_MEAN.clone(), pixel_std=PIXEL_STD.clone())
    for group in record["shared"]:  # one tensor under several names, as torch.save writes it
        state.update(dict.fromkeys(group, torch.zeros_like(state[group[0]])))
    with uninitialised_build():
        model = builders()[entry["builder"]](num_classes=entry["num_classes"], **entry["kwargs"])
    model.load_state_dict(read_fastreid_state_dict({"model": state}, entry["kwargs"]["era"]), strict=True, assign=True)
    assert meta_tensors(model) == []
