"""Make ``tests/data/fastreid_era/``: outputs of fast-reid's own era code, for the era-parity tests.

fast-reid's release files were trained with the code of its v0.1.1 era (tag
``v0.1.1``, commit ``64861ea``); VERI-Wild's with v1.0 (tag ``v1.0.0``,
``7e83d31``).  Neither is on PyPI.  This script imports the modeling code of a
checkout of one of them, builds each released configuration with it, fills
every parameter and buffer with deterministic weights drawn by FILE key name
(``tests/architectures/fastreid_era.py``), runs a seeded batch of 2 images at
128x64 in eval mode (float32) and in train mode (float64: batch statistics of 2
images are too ill-conditioned for float32 results to agree across CPUs), and writes

* ``v<era>.json``: per configuration, our builder and its kwargs, the
  fast-reid config values used, the file key layout (key, shape, dtype, in the
  era's state-dict order), the keys that name one shared tensor, and the seeds;
* ``v<era>.npz``: the outputs (no weights).

``tests/architectures/test_fastreid_era.py`` regenerates the same weights by
key name, passes them through ``modelzoo.formats.fastreid`` into our network
and compares.  To remake the data (CPU, about a minute)::

    mkdir -p /tmp/fastreid-v011 /tmp/fastreid-v100
    git -C <fast-reid clone> archive 64861ea | tar -x -C /tmp/fastreid-v011
    git -C <fast-reid clone> archive 7e83d31 | tar -x -C /tmp/fastreid-v100
    PYTHONPATH=$PWD python scripts/make_fastreid_era_data.py --fastreid-src /tmp/fastreid-v011 --era 0.1.1
    PYTHONPATH=$PWD python scripts/make_fastreid_era_data.py --fastreid-src /tmp/fastreid-v100 --era 1.0

Nothing of fast-reid is copied into this repository; the checkout stays outside it.

S50: the v0.1.1 tag's ResNeSt builder only accepts the integer depth 50 (its
yml files say "50x", accepted from ``65169b4``, the day after), so the S50
files come from a neighbouring commit; ``resnest.py`` was unchanged from
``8ab0bc2`` (2020-05-08) to ``65169b4`` apart from that key and IBN handling,
which S50 does not use.  This script passes ``DEPTH 50``.  The non-local keys
of AGW-S50 / SBS-S50 (``backbone.NL_*``) are therefore what that code builds,
not keys seen in a release file.

Run-time patches (torch 2): the v1.0.0 code imports NVIDIA apex (SyncBN, DDP);
a stub ``apex.parallel`` with torch's own classes stands in for it (neither is used here).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# run from the repository root with PYTHONPATH=$PWD (see the module docstring)
from tests.architectures.fastreid_era import (
    DATA,
    encode_layout,
    file_weights,
    layout_of,
    oracle_images,
    shared_groups,
)

WEIGHTS_SEED = 20200729
INPUT_SEED = 7
INPUT_SHAPE = (2, 3, 128, 64)
TARGETS = (0, 1)
SOURCES = {"0.1.1": ("v0.1.1", "64861ea"), "1.0": ("v1.0.0", "7e83d31")}

# fast-reid config values of each configuration (its yml files, facts section 2), by the era's names.
BOT = {"HEADS.POOL_LAYER": "avgpool", "HEADS.NECK_FEAT": "before", "HEADS.CLS_LAYER": "linear"}
AGW = {"BACKBONE.WITH_NL": True, "HEADS.POOL_LAYER": "gempool", "HEADS.NECK_FEAT": "before",
       "HEADS.CLS_LAYER": "linear"}  # fmt: skip
SBS = {"BACKBONE.WITH_NL": True, "HEADS.POOL_LAYER": "gempool", "HEADS.NECK_FEAT": "after",
       "HEADS.CLS_LAYER": "circleSoftmax", "HEADS.SCALE": 64, "HEADS.MARGIN": 0.35}  # fmt: skip
BACKBONES = {
    "r50": {"BACKBONE.DEPTH": "50x"},
    "r50_ibn": {"BACKBONE.DEPTH": "50x", "BACKBONE.WITH_IBN": True},
    "r101_ibn": {"BACKBONE.DEPTH": "101x", "BACKBONE.WITH_IBN": True},
    "s50": {"BACKBONE.NAME": "build_resnest_backbone", "BACKBONE.DEPTH": 50},  # see the docstring
}
MARKET, VERI, VEHICLEID, VERIWILD = 751, 576, 13164, 30671
LARGEST_PERSON_CLASSIFIER = 1041  # MSMT17


def person_configs() -> dict[str, dict[str, Any]]:
    """The 12 Baseline configurations and MGN, each as released for Market-1501."""
    configs = {}
    for method, settings in (("bot", BOT), ("agw", AGW), ("sbs", SBS)):
        for backbone, backbone_settings in BACKBONES.items():
            name = f"{method}_{backbone}"
            configs[name] = {"builder": name, "kwargs": {}, "num_classes": MARKET,
                             "cfg": {**settings, **backbone_settings}}  # fmt: skip
    configs["mgn_r50_ibn"] = {
        "builder": "mgn_r50_ibn", "kwargs": {}, "num_classes": MARKET,
        "cfg": {**SBS, "META_ARCHITECTURE": "MGN", "BACKBONE.WITH_NL": False, "BACKBONE.WITH_IBN": True,
                "HEADS.IN_FEAT": 256},
    }  # fmt: skip
    return configs


def era_configs(era: str) -> dict[str, dict[str, Any]]:
    """The configurations to run with ``era``'s code (the released files of that era)."""
    if era == "1.0":  # VERI-Wild: at v1.0 ``gempool`` is the fixed-p GeM
        return {"veriwild_bot_r50_ibn": {
            "builder": "bot_r50_ibn", "kwargs": {"era": "1.0", "pool": "gem_fixed"}, "num_classes": VERIWILD,
            "cfg": {**BOT, **BACKBONES["r50_ibn"], "HEADS.POOL_LAYER": "gempool"}}}  # fmt: skip
    configs = person_configs()
    configs["veri_sbs_r50_ibn"] = {**configs["sbs_r50_ibn"], "num_classes": VERI}
    configs["vehicleid_bot_r50_ibn"] = {
        "builder": "bot_r50_ibn", "kwargs": {"pool": "gem_learned"}, "num_classes": VEHICLEID,
        "cfg": {**BOT, **BACKBONES["r50_ibn"], "HEADS.POOL_LAYER": "gempool"}}  # fmt: skip
    return configs


def import_fastreid(source: Path, era: str) -> types.ModuleType:
    """Import the modeling code of the checkout at ``source`` (not the installed fastreid)."""
    if era == "1.0":  # v1.0.0 imports apex.parallel (SyncBN, DDP) at import time; neither is used here
        parallel = types.ModuleType("apex.parallel")
        parallel.SyncBatchNorm = nn.SyncBatchNorm
        parallel.DistributedDataParallel = nn.parallel.DistributedDataParallel
        apex = types.ModuleType("apex")
        apex.parallel = parallel
        sys.modules.setdefault("apex", apex)
        sys.modules.setdefault("apex.parallel", parallel)
    sys.path.insert(0, str(source))
    fastreid = importlib.import_module("fastreid")
    if Path(fastreid.__file__).resolve().parent.parent != source.resolve():
        raise SystemExit(f"imported fastreid from {fastreid.__file__}, not from {source}")
    return fastreid


def era_model(era: str, config: dict[str, Any]) -> nn.Module:
    """Build ``config`` with the imported era code, on the CPU, without downloading anything."""
    cfg = importlib.import_module("fastreid.config").get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES = config["num_classes"]  # the heads are the era's default (BNneckHead, EmbeddingHead)
    for dotted, value in config["cfg"].items():
        node = cfg.MODEL
        *parents, leaf = dotted.split(".")
        for parent in parents:
            node = getattr(node, parent)
        setattr(node, leaf, value)
    build_model = importlib.import_module("fastreid.modeling.meta_arch").build_model
    return build_model(cfg)


def head_outputs(model: nn.Module, images: torch.Tensor, era: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Train-mode ``(pred_class_logits, feature for the triplet loss)`` of a Baseline."""
    features = model.backbone(model.preprocess_image(images.clone()))
    targets = torch.tensor(TARGETS)
    outputs = model.heads(features, targets)
    if era == "1.0":
        return outputs["pred_class_logits"], outputs["features"]
    _, logits, feature = outputs
    return logits, feature


def mgn_train_necks(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Train-mode neck features of v0.1.1 MGN, concatenated in the eval order (b1, b2, b3, b21, ..., b33)."""
    outputs, _ = model({"images": images.clone(), "targets": torch.tensor(TARGETS)})
    b1, b2, b3, b2_parts, b3_parts = outputs[8:13]
    return torch.cat([b1, b2, b3, b2_parts, b3_parts], dim=1)


def run(era: str, config: dict[str, Any], images: torch.Tensor) -> tuple[dict, dict[str, np.ndarray]]:
    """Build, fill and run one configuration; its JSON record and its outputs."""
    model = era_model(era, config)
    own = model.state_dict(keep_vars=True)
    layout, shared = layout_of(own), shared_groups(own)
    model.load_state_dict(file_weights(layout, WEIGHTS_SEED, shared), strict=True)
    is_mgn = config["cfg"].get("META_ARCHITECTURE") == "MGN"
    outputs = {}
    model.eval()
    with torch.no_grad():
        outputs["eval"] = model({"images": images.clone()} if is_mgn else images.clone())
        # train mode in float64: with a batch of 2, BatchNorm's batch statistics (ResNeSt's attention, the
        # BNNeck) amplify float32 rounding so much that two CPUs' results differ by up to 100 %
        model.double().train()
        images = images.double()
        if is_mgn:
            outputs["train_neck"] = mgn_train_necks(model, images)
        else:
            logits, feature = head_outputs(model, images, era)
            outputs["train_triplet_feature"] = feature  # SBS (circle): NECK_FEAT after, the neck feature
            # circle: the era's pred_class_logits skip the cosine; the vehicle classifiers (13164, 30671
            # rows) take the person files' code path and would make up most of the data
            if config["cfg"]["HEADS.CLS_LAYER"] == "linear" and config["num_classes"] <= LARGEST_PERSON_CLASSIFIER:
                outputs["train_logits"] = logits
    record = {**config, "layout": encode_layout(layout), "shared": shared}
    return record, {name: value.numpy() for name, value in outputs.items()}


def main() -> None:
    """Parse the arguments, run every configuration of the era, write the data files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fastreid-src", type=Path, required=True, help="fast-reid checkout at the era's tag")
    parser.add_argument("--era", choices=sorted(SOURCES), required=True)
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--only", nargs="*", help="configuration names (default: all)")
    args = parser.parse_args()
    import_fastreid(args.fastreid_src, args.era)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    images = oracle_images(INPUT_SEED, INPUT_SHAPE)
    tag, commit = SOURCES[args.era]
    document = {"era": args.era, "tag": tag, "commit": commit, "weights_seed": WEIGHTS_SEED,
                "input_seed": INPUT_SEED, "input_shape": list(INPUT_SHAPE), "targets": list(TARGETS),
                "input_sum": float(images.double().sum()), "configs": {}}  # fmt: skip
    arrays: dict[str, np.ndarray] = {}
    for name, config in era_configs(args.era).items():
        if args.only and name not in args.only:
            continue
        record, outputs = run(args.era, config, images)
        document["configs"][name] = record
        arrays.update({f"{name}/{output}": value for output, value in outputs.items()})
        print(f"{name}: {len(record['layout'])} keys, outputs {sorted(outputs)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"v{args.era}.json").write_text(json.dumps(document, indent=1) + "\n")
    np.savez_compressed(args.out / f"v{args.era}.npz", **arrays)


if __name__ == "__main__":
    main()
