"""fast-reid's part of the manifest: the 41 release files, as the file table and the published zoo page say.

Two independent sources: ``RELEASED_FILES`` (tests/architectures/test_fastreid_files.py:
builder, kwargs, classes, input size of each file, checked there against
fast-reid's own era code) and the published numbers of fast-reid's
MODEL_ZOO.md as recorded in ``shared/reference/fastreid-zoo-facts.md``
(skipped when that file is not beside the checkout).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import modelzoo
from modelzoo import manifest
from modelzoo.errors import UnknownCheckpointError
from modelzoo.formats.fastreid import FASTREID_PIXEL_MEAN, FASTREID_PIXEL_STD
from tests.architectures.test_fastreid_files import RELEASED_FILES

FACTS = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "fastreid-zoo-facts.md"
RELEASE = "https://github.com/JDAI-CV/fast-reid/releases/download/v0.1.1/"
CHECKPOINTS = {c.filename: c for r in manifest.models().values() if r.zoo == "fastreid" for c in r.checkpoints.values()}


def test_the_41_release_files_are_the_fastreid_checkpoints():
    assert sorted(CHECKPOINTS) == sorted(RELEASED_FILES)


@pytest.mark.parametrize("filename", sorted(RELEASED_FILES))
def test_each_file_is_recorded_as_the_file_table_describes_it(filename):
    entry, checkpoint = RELEASED_FILES[filename], CHECKPOINTS[filename]
    assert checkpoint.model == entry["builder"]
    assert dict(checkpoint.builder_args) == entry["kwargs"]
    assert dict(checkpoint.layout_options) == {"era": entry["kwargs"]["era"]} and checkpoint.layout == "fastreid"
    assert checkpoint.num_classes == entry["num_classes"]
    assert checkpoint.preprocessing.input_size == entry["input_size"]
    assert [(s.url, s.kind, s.format) for s in checkpoint.sources] == [(RELEASE + filename, "http", "checkpoint")]
    assert (checkpoint.sha256, checkpoint.size, checkpoint.distance) == (None, None, "cosine")
    assert checkpoint.preprocessing.interpolation == "bicubic"
    options = checkpoint.reader_options
    assert options["pixel_mean"] == pytest.approx(FASTREID_PIXEL_MEAN) and options["pixel_std"] == pytest.approx(
        FASTREID_PIXEL_STD)


def _published_on_the_zoo_page() -> dict[str, list[dict]]:
    """File name -> published results, parsed from the facts file's copy of fast-reid's MODEL_ZOO.md."""
    text = FACTS.read_text(encoding="utf-8")
    published: dict[str, list[dict]] = {}
    datasets = {"market": "market1501", "duke": "dukemtmcreid", "msmt": "msmt17"}
    for r1, mAP, mINP, name in re.findall(r"([\d.]+) / ([\d.]+) / ([\d.]+) `(\w+_\w+_[\w-]+\.pth)`", text):
        published[name] = [{"dataset": datasets[name.split("_")[0]], "split": None, "rank1": float(r1),
                            "mAP": float(mAP), "mINP": float(mINP)}]
    veri = re.search(r"R1 ([\d.]+), mAP ([\d.]+), mINP ([\d.]+) \| `veri_sbs_R50-ibn.pth`", text)
    assert veri
    published["veri_sbs_R50-ibn.pth"] = [{"dataset": "veri", "split": None, "rank1": float(veri[1]),
                                          "mAP": float(veri[2]), "mINP": float(veri[3])}]
    vehicleid = re.search(r"\| (small R1 .*?) \(\"10-fold", text)
    assert vehicleid
    published["vehicleid_bot_R50-ibn.pth"] = [
        {"dataset": "vehicleid", "split": split, "rank1": float(r1), "rank5": float(r5)}
        for split, r1, r5 in re.findall(r"(small|medium|large) R1 ([\d.]+) R5 ([\d.]+)", vehicleid[1])]
    wild = re.search(r"\| (small [\d.]+ / .*?) \(R1 / mAP / mINP\)", text)
    assert wild
    published["veriwild_bot_R50-ibn.pth"] = [
        {"dataset": "veriwild", "split": split, "rank1": float(r1), "mAP": float(mAP), "mINP": float(mINP)}
        for split, r1, mAP, mINP in re.findall(r"(small|medium|large) ([\d.]+) / ([\d.]+) / ([\d.]+)", wild[1])]
    return published


def test_every_published_number_is_the_zoo_pages():
    if not FACTS.is_file():
        pytest.skip(f"{FACTS} is absent (../shared is not beside this checkout)")
    published = _published_on_the_zoo_page()
    assert sorted(published) == sorted(CHECKPOINTS)
    for filename, expected in published.items():
        recorded = [{"dataset": r.dataset, "split": r.split, **r.published} for r in CHECKPOINTS[filename].results]
        assert recorded == expected, filename


def test_mgn_on_msmt17_is_published_without_weights():
    mgn = modelzoo.info("mgn_r50_ibn")
    assert "msmt17" not in mgn.checkpoints
    assert [(r.dataset, r.rank1, r.mAP, r.mINP) for r in mgn.unreleased] == [("msmt17", 85.1, 65.4, 18.4)]
    with pytest.raises(UnknownCheckpointError, match=r"its weights never were\); it has: market1501, dukemtmcreid"):
        manifest.resolve_checkpoint("mgn_r50_ibn", "msmt")


@pytest.mark.parametrize("spelling, name", [("sbs_R101-ibn", "sbs_r101_ibn"), ("bagtricks_R50", "bot_r50"),
                                            ("bot_R50-ibn", "bot_r50_ibn"), ("AGW_R50-ibn", "agw_r50_ibn"),
                                            ("mgn_R50-ibn", "mgn_r50_ibn"), ("bagtricks_S50", "bot_s50")])
def test_fastreids_own_spellings_resolve(spelling, name):
    assert modelzoo.info(spelling).name == name
    assert manifest.resolve_checkpoint(f"{spelling}.market1501").model == name


def test_every_fastreid_model_is_of_its_zoo_and_every_torchreid_one_of_the_other():
    zoos = {r.name: r.zoo for r in manifest.models().values()}
    assert {name for name, zoo in zoos.items() if zoo == "fastreid"} == {e["builder"] for e in RELEASED_FILES.values()}
    assert all(r.torchreid_name is None for r in manifest.models().values() if r.zoo == "fastreid")
