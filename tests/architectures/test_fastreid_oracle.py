"""With ``era="1.4.0"`` our networks equal fastreid 1.4.0's own modeling code (parity a).

fastreid 1.4.0 (PyPI, a test-only oracle) builds each configuration from a
config made here with the settings of its yml files (facts section 2); both
networks get the same weights, drawn by key name (every parameter and
buffer), and the same images (0..255 for fastreid, which normalises inside
the model; normalised for ours).  Eval embeddings, train-mode logits and
triplet features must agree to a relative difference of 1e-5.

fastreid 1.4.0 cannot build the era-only parts (the padded stem max-pool,
learned p in AGW / VehicleID, ResNeSt layer4 without dilation and with
non-local blocks, MGN's era heads); ``test_fastreid_era.py`` covers those.
"""

from __future__ import annotations

import pytest
import torch

from modelzoo.architectures import builders
from modelzoo.loading import uninitialised_build
from tests.architectures.fastreid_era import (
    PIXEL_MEAN,
    PIXEL_STD,
    file_weights,
    layout_of,
    normalised,
    oracle_images,
    relative_difference,
)

fastreid_config = pytest.importorskip("fastreid.config", reason="fastreid==1.4.0 is the oracle of these tests")
fastreid_meta_arch = pytest.importorskip("fastreid.modeling.meta_arch")

TOLERANCE = 1e-5
NUM_CLASSES = 751
WEIGHTS_SEED, INPUT_SEED = 1234, 7
INPUT_SHAPE = (2, 3, 128, 64)
TARGETS = torch.tensor([0, 1])
MGN_ORDER = ("b1", "b2", "b3", "b21", "b22", "b31", "b32", "b33")

# 1.4.0's names for the settings of each config (facts section 2).
BACKBONE = {
    "r50": {"DEPTH": "50x"},
    "r50_ibn": {"DEPTH": "50x", "WITH_IBN": True},
    "r101_ibn": {"DEPTH": "101x", "WITH_IBN": True},
    "s50": {"NAME": "build_resnest_backbone", "DEPTH": "50x"},
}
HEADS = {
    "bot": {"POOL_LAYER": "GlobalAvgPool", "NECK_FEAT": "before", "CLS_LAYER": "Linear"},
    "agw": {"POOL_LAYER": "GeneralizedMeanPooling", "NECK_FEAT": "before", "CLS_LAYER": "Linear"},
    "sbs": {"POOL_LAYER": "GeneralizedMeanPoolingP", "NECK_FEAT": "after", "CLS_LAYER": "CircleSoftmax",
            "SCALE": 64, "MARGIN": 0.35},
}  # fmt: skip


def _cases() -> dict[str, tuple[str, dict, dict, dict]]:
    """name -> (our builder, our kwargs, 1.4.0 MODEL.BACKBONE settings, MODEL.HEADS settings)."""
    cases = {}
    for method, heads in HEADS.items():
        for backbone, settings in BACKBONE.items():
            with_nl = {"WITH_NL": method != "bot"}
            cases[f"{method}_{backbone}"] = (f"{method}_{backbone}", {}, {**settings, **with_nl}, heads)
    cases["mgn_r50_ibn"] = ("mgn_r50_ibn", {}, BACKBONE["r50_ibn"], {**HEADS["sbs"], "EMBEDDING_DIM": 256})
    # The vehicle BoT R50-ibn pools as 1.4.0 can build them: fixed p (VERI-Wild) and learned p (VehicleID's pool)
    cases["bot_r50_ibn_gem_fixed"] = ("bot_r50_ibn", {"pool": "gem_fixed"}, BACKBONE["r50_ibn"], HEADS["agw"])
    learned = {**HEADS["bot"], "POOL_LAYER": "GeneralizedMeanPoolingP"}
    cases["bot_r50_ibn_gem_learned"] = ("bot_r50_ibn", {"pool": "gem_learned"}, BACKBONE["r50_ibn"], learned)
    return cases


CASES = _cases()
QUICK = ("agw_r50_ibn", "sbs_s50")  # stem, IBN, non-local, fixed GeM, linear; ResNeSt, learned GeM, circle


def oracle(name: str, *, on_meta: bool = False) -> torch.nn.Module:
    """fastreid 1.4.0's network for ``name``; on the meta device (for its layout) without ``build_model``'s ``.to``."""
    _, _, backbone, heads = CASES[name]
    cfg = fastreid_config.get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "MGN" if name.startswith("mgn") else "Baseline"
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.BACKBONE.LAST_STRIDE = 1
    cfg.MODEL.HEADS.WITH_BNNECK = True
    cfg.MODEL.HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.PIXEL_MEAN = PIXEL_MEAN.flatten().tolist()
    cfg.MODEL.PIXEL_STD = PIXEL_STD.flatten().tolist()
    for key, value in backbone.items():
        setattr(cfg.MODEL.BACKBONE, key, value)
    for key, value in heads.items():
        setattr(cfg.MODEL.HEADS, key, value)
    if on_meta:
        with uninitialised_build():
            return fastreid_meta_arch.META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    return fastreid_meta_arch.build_model(cfg)


def ours(name: str) -> torch.nn.Module:
    builder, kwargs, _, _ = CASES[name]
    with uninitialised_build():
        return builders()[builder](num_classes=NUM_CLASSES, loss="triplet", era="1.4.0", **kwargs)


def oracle_training_outputs(model: torch.nn.Module, images_255: torch.Tensor, mgn: bool):
    """1.4.0's train-mode (logits, triplet feature); its forward returns losses, so the heads are called directly."""
    features = model.backbone(model.preprocess_image(images_255.clone()))
    if not mgn:
        outputs = model.heads(features, TARGETS)
        return outputs["pred_class_logits"], outputs["features"]
    maps = {"b1": model.b1(features), "b2": model.b2(features), "b3": model.b3(features)}
    maps.update(zip(("b21", "b22"), torch.chunk(maps["b2"], 2, dim=2), strict=True))
    maps.update(zip(("b31", "b32", "b33"), torch.chunk(maps["b3"], 3, dim=2), strict=True))
    outputs = {branch: getattr(model, f"{branch}_head")(maps[branch], TARGETS) for branch in MGN_ORDER}
    logits = tuple(outputs[branch]["pred_class_logits"] for branch in MGN_ORDER)
    return logits, torch.cat([outputs[branch]["features"] for branch in MGN_ORDER], dim=1)


def _params():
    return [pytest.param(name, marks=[] if name in QUICK else [pytest.mark.slow]) for name in CASES]


@pytest.mark.parametrize("name", _params())
def test_outputs_equal_fastreid_1_4_0(name):
    theirs, model = oracle(name), ours(name)
    state = file_weights(layout_of(theirs.state_dict()), WEIGHTS_SEED)
    theirs.load_state_dict(state, strict=True)
    model.load_state_dict(state, strict=True, assign=True)
    images_255 = oracle_images(INPUT_SEED, INPUT_SHAPE)
    mgn = name.startswith("mgn")
    with torch.no_grad():
        differences = {"eval": relative_difference(model.eval()(normalised(images_255)),
                                                   theirs.eval()(images_255.clone()))}  # fmt: skip
        our_logits, our_feature = model.train()(normalised(images_255))
        their_logits, their_feature = oracle_training_outputs(theirs.train(), images_255, mgn)
    pairs = zip(our_logits, their_logits, strict=True) if mgn else [(our_logits, their_logits)]
    for index, (a, b) in enumerate(pairs):
        differences[f"train_logits_{index}"] = relative_difference(a, b)
    differences["train_triplet_feature"] = relative_difference(our_feature, their_feature)
    assert max(differences.values()) <= TOLERANCE, differences


@pytest.mark.parametrize("name", CASES)
def test_state_dict_equals_fastreid_1_4_0(name):
    theirs = oracle(name, on_meta=True)
    assert sorted(layout_of(ours(name).state_dict())) == sorted(layout_of(theirs.state_dict()))
