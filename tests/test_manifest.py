"""The manifest: exactly the seed table, validated on load, names resolved with suggestions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import modelzoo
from modelzoo import manifest
from modelzoo.errors import ManifestError, UnknownCheckpointError, UnknownModelError

REPO = Path(__file__).resolve().parent.parent
SEED = REPO.parent / "shared" / "seed" / "MODEL_ZOO.md"
SEED_DATASETS = ("market1501", "dukemtmcreid", "msmt17")
SEED_NUM_CLASSES = {"market1501": 751, "dukemtmcreid": 702, "msmt17": 1041}


def parse_seed_table(text: str) -> dict[str, dict]:
    """Rows of the seed's Markdown table: params, loss, input, (rank1, mAP, url) per dataset."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("| ") or "http" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        scratch = "<sup>*</sup>" in cells[0]
        name = cells[0].replace("<sup>*</sup>", "")
        per_dataset = {}
        for dataset, cell in zip(SEED_DATASETS, cells[4:7]):
            match = re.fullmatch(r"\[([\d.]+)\s*\(([\d.]+)\)\]\((\S+)\)", cell)
            assert match, f"unparsable seed cell {cell!r}"
            per_dataset[dataset] = (float(match[1]), float(match[2]), match[3])
        height, width = (int(v) for v in re.findall(r"\d+", cells[3]))
        rows[name] = {
            "params": float(cells[1]),
            "loss": cells[2],
            "input": (height, width),
            "scratch": scratch,
            "datasets": per_dataset,
        }
    return rows


@pytest.fixture(scope="module")
def seed_rows():
    if not SEED.is_file():
        pytest.skip(f"the seed table {SEED} is absent (../shared is not beside this checkout)")
    rows = parse_seed_table(SEED.read_text(encoding="utf-8"))
    assert len(rows) == 11
    return rows


def test_manifest_holds_every_seed_row_exactly(seed_rows):
    for name, row in seed_rows.items():
        record = modelzoo.info(name)
        assert record.params_m == row["params"], name
        assert record.loss == row["loss"], name
        assert record.input_size == row["input"], name
        assert record.from_scratch == row["scratch"], name
        for dataset, (rank1, mAP, url) in row["datasets"].items():
            ckpt = record.checkpoints[dataset]
            assert (ckpt.rank1, ckpt.mAP) == (rank1, mAP), ckpt.name
            seed = next((s for s in ckpt.sources if s.url == url), None)
            assert seed is not None and seed.kind == "http", ckpt.name
            assert ckpt.filename == url.rsplit("/", 1)[1]
            assert ckpt.format == ("zip" if url.endswith(".zip") else "checkpoint")
            assert ckpt.num_classes == SEED_NUM_CLASSES[dataset]
            assert ckpt.trained_on == dataset
            assert ckpt.preprocessing.input_size == row["input"]


def test_seed_checkpoint_count_and_osnet_family_present(seed_rows):
    seed_checkpoints = [f"{n}.{d}" for n in seed_rows for d in SEED_DATASETS]
    assert len(seed_checkpoints) == 33
    every = {c.name for r in manifest.models().values() for c in r.checkpoints.values()}
    assert set(seed_checkpoints) <= every
    for width in ("x1_0", "x0_75", "x0_5", "x0_25"):
        record = modelzoo.info(f"osnet_{width}")
        assert set(SEED_DATASETS) <= set(record.checkpoints)
        assert record.checkpoints["msmt17_combineall"].num_classes == 4101
    assert modelzoo.info("osnet_x1_0").checkpoints["market1501"].rank1 == 94.2


def test_only_hacnn_counts_its_classifier():
    counted = {r.name: r.params_counted for r in manifest.models().values()}
    assert counted.pop("hacnn") == "total"
    assert set(counted.values()) == {"without_classifier"}


def test_every_hash_and_size_given_is_well_formed():
    from modelzoo.formats.digest import is_sha256

    for record in manifest.models().values():
        for ckpt in record.checkpoints.values():
            assert ckpt.sha256 is None or is_sha256(ckpt.sha256), ckpt.name
            assert ckpt.size is None or (isinstance(ckpt.size, int) and ckpt.size > 0), ckpt.name


def test_cross_domain_checkpoints_are_named_honestly():
    ibn = modelzoo.info("osnet_ibn_x1_0").checkpoints["market1501"]
    assert ibn.trained_on == "market1501"
    assert ibn.rank1 is None  # no same-domain result is claimed
    assert ibn.result_on("dukemtmcreid").rank1 == 48.5
    ain = modelzoo.info("osnet_ain_x1_0").checkpoints["msmt17_combineall"]
    assert ain.distance == "cosine" and [r.dataset for r in ain.results] == ["market1501", "dukemtmcreid"]
    assert set(modelzoo.info("osnet_ain_x0_25").checkpoints) == {"imagenet"}


def test_live_sources_come_first_and_the_archive_last():
    sources = modelzoo.info("resnet50_fc512").checkpoints["market1501"].sources
    assert [s.kind for s in sources] == ["gdrive", "http", "http"]  # Drive, QMUL (dead), the Internet Archive's copy
    assert sources[0].url.endswith("1kv8l5laX_YCdIGVCetjlNdzKIA3NvsSt")
    assert sources[0].format == "checkpoint" and sources[1].format == "zip"
    assert [s.status for s in sources] == ["quota-limited", "dead", "archived"]
    assert [s.status for s in modelzoo.info("densenet121_fc512").checkpoints["market1501"].sources] == \
        ["dead", "archived"]


def test_aliases_and_dataset_short_names_resolve():
    assert modelzoo.info("mobilenetv2_x1_0").name == "mobilenetv2_1dot0"
    assert manifest.resolve_checkpoint("mobilenetv2_x1_4", "duke").name == "mobilenetv2_1dot4.dukemtmcreid"
    assert manifest.resolve_checkpoint("resnet50_fc512.market1501").filename == "resnet50_fc512_market_softmax.zip"
    assert manifest.resolve_checkpoint("resnet50", "msmt").key == "msmt17"


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError) as caught:
        modelzoo.info("resnet50_fc12")
    assert isinstance(caught.value, KeyError)
    assert "resnet50_fc512" in str(caught.value) and "modelzoo list" in str(caught.value)


def test_unknown_dataset_lists_the_models_datasets():
    with pytest.raises(UnknownCheckpointError) as caught:
        manifest.resolve_checkpoint("hacnn", "cuhk03")
    assert "market1501, dukemtmcreid, msmt17" in str(caught.value)


def test_list_models_filters_with_fnmatch_in_natural_order():
    assert manifest.list_models()[:3] == ["resnet50", "resnet50_fc512", "densenet121_fc512"]
    assert manifest.list_models("osnet_x*") == ["osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25"]
    assert "osnet_ain_x0_5" not in manifest.list_models(dataset="market")
    assert manifest.list_models("mobilenetv2_x1_4") == ["mobilenetv2_1dot4"]


def _copy_manifest(tmp_path: Path) -> Path:
    target = tmp_path / "manifest"
    shutil.copytree(REPO / "manifest", target)
    return target


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("loss"), "missing field 'loss'"),
        (lambda d: d.update(colour="red"), "unknown field 'colour'"),
        (lambda d: d["checkpoints"]["market1501"].pop("num_classes"), "checkpoints.market1501: missing field 'num_classes'"),
        (lambda d: d["checkpoints"]["market1501"]["sources"][0].update(kind="ftp"), "sources[0].kind"),
        (lambda d: d["checkpoints"]["market1501"].update(sha256="abc"), "sha256"),
        (lambda d: d.update(input_size=[256]), "input_size"),
        (lambda d: d.update(zoo="mmreid"), "zoo: 'mmreid' is not one of torchreid, fastreid"),
        (lambda d: d.update(torchreid_name=None), "torchreid_name"),
        (lambda d: d.update(aliases=["ResNet50"]), "'ResNet50' must be lower case"),
        (lambda d: d["checkpoints"]["market1501"].update(layout="onnx"), "market1501.layout"),
        (lambda d: d["checkpoints"]["market1501"].update(layout="fastreid"), "the fastreid layout takes era"),
        (lambda d: d["checkpoints"]["market1501"].update(layout_options={"era": "0.1.1"}), "torchreid layout takes none"),
        (lambda d: d["checkpoints"]["market1501"].update(builder_args=[]), "'builder_args' has the wrong type"),
        (lambda d: d["checkpoints"]["market1501"]["results"][0].update(split="small"), "results[0].split"),
        (lambda d: d["checkpoints"]["market1501"]["results"].append({"dataset": "vehicleid", "rank1": 1.0}),
         "results[1].split: vehicleid is tested at 3 sizes"),
        (lambda d: d["checkpoints"]["market1501"]["results"].append({"dataset": "market1501", "rank1": 1.0}),
         "two results on market1501"),
        (lambda d: d["checkpoints"]["market1501"]["results"][0].update(mINP="high"), "'mINP' has the wrong type"),
        (lambda d: d.update(unreleased=[{"dataset": "msmt17", "rank1": 1.0, "colour": 2}]), "unknown field 'colour'"),
    ],
)
def test_malformed_manifest_names_the_file_and_field(tmp_path, edit, message):
    directory = _copy_manifest(tmp_path)
    path = directory / "resnet50.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError) as caught:
        manifest.read_manifest(directory)
    assert "resnet50.json" in str(caught.value) and message in str(caught.value)


def test_duplicate_alias_is_an_error(tmp_path):
    directory = _copy_manifest(tmp_path)
    path = directory / "resnet50.json"
    data = json.loads(path.read_text())
    data["aliases"] = ["mobilenetv2_x1_0"]
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="mobilenetv2_x1_0"):
        manifest.read_manifest(directory)


def test_manifest_readme_documents_every_field():
    readme = (REPO / "manifest" / "README.md").read_text()
    fields = set(manifest._MODEL_FIELDS) | set(manifest._CHECKPOINT_FIELDS) | set(manifest._PREPROCESSING_FIELDS)
    fields |= set(manifest._MODEL_OPTIONAL) | set(manifest._CHECKPOINT_OPTIONAL)
    fields |= set(manifest._SOURCE_FIELDS) | set(manifest._SOURCE_OPTIONAL) | set(manifest._RESULT_FIELDS)
    fields |= set(manifest._RESULT_OPTIONAL) | set(manifest._CHECKPOINT_OPTIONAL)
    undocumented = sorted(f for f in fields if f"`{f}`" not in readme)
    assert undocumented == []


def test_optional_fields_have_their_defaults_and_a_result_may_publish_no_map(tmp_path):
    directory = _copy_manifest(tmp_path)
    path = directory / "resnet50.json"
    data = json.loads(path.read_text())
    entry = data["checkpoints"]["market1501"]
    entry["results"] = [{"dataset": "vehicleid", "split": "small", "rank1": 86.6, "rank5": 97.9},
                        {"dataset": "veriwild", "split": "large", "rank1": 92.5, "mAP": 77.3, "mINP": 49.8}]
    entry.update(layout="fastreid", layout_options={"era": "1.0"}, builder_args={"pool": "avg"})
    path.write_text(json.dumps(data))
    record = manifest.read_manifest(directory)["resnet50"]
    assert record.zoo == "torchreid" and record.unreleased == ()
    checkpoint = record.checkpoints["market1501"]
    vehicleid, veriwild = checkpoint.results
    assert vehicleid.mAP is None and vehicleid.published == {"rank1": 86.6, "rank5": 97.9}
    assert vehicleid.test_set == "vehicleid (small)" and veriwild.mINP == 49.8
    assert checkpoint.builder_args == {"pool": "avg"}
    assert checkpoint.reader_options == {"era": "1.0", "pixel_mean": pytest.approx((123.675, 116.28, 103.53)),
                                         "pixel_std": pytest.approx((58.395, 57.12, 57.375))}
    torchreid_checkpoint = record.checkpoints["dukemtmcreid"]
    assert (torchreid_checkpoint.layout, torchreid_checkpoint.reader_options, torchreid_checkpoint.builder_args) == \
        ("torchreid", {}, {})
