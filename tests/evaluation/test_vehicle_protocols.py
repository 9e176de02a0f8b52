"""evaluate() and verify on the vehicle protocols: test sizes, VehicleID's averaged random galleries, mINP and R5 rows.

A small network (osnet_x0_25, untrained) on synthetic trees in fast-reid's
layouts: these tests are about the protocols, not about fast-reid's networks
(tests/test_get.py loads those).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import modelzoo
from modelzoo import manifest
from modelzoo.cli import main
from modelzoo.datasets import read_dataset
from modelzoo.errors import UnknownDatasetError
from modelzoo.evaluation import evaluate_from_features
from modelzoo.inference.features import extract_features
from modelzoo.testing import synthetic
from modelzoo.testing.checkpoints import write_for_checkpoint

REPO = Path(__file__).resolve().parents[2]
MODEL = "osnet_x0_25"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vehicles")
    synthetic.write_dataset("vehicleid", root, image_size=(64, 64))
    synthetic.write_dataset("veriwild", root, image_size=(64, 64))
    return root


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return modelzoo.build(MODEL, num_classes=0).eval()


def by_hand(model, splits, metric="euclidean"):
    """The ranking of each test set, from features extracted by hand (one pass over all their images)."""
    paths = sorted({r.path for split in splits for r in split.query + split.gallery})
    features = dict(zip(paths, extract_features(model, paths, num_workers=0, progress=False)))

    def stacked(records):
        return torch.stack([features[r.path] for r in records])

    def ids(records):
        return np.array([r.pid for r in records]), np.array([r.camid for r in records])

    rankings = []
    for split in splits:
        (q_pids, q_cams), (g_pids, g_cams) = ids(split.query), ids(split.gallery)
        rankings.append(evaluate_from_features(stacked(split.query), stacked(split.gallery), q_pids, g_pids, q_cams,
                                               g_cams, metric=metric))
    return rankings


def test_vehicleid_averages_seeded_trials_from_one_extraction(model, data_root, monkeypatch):
    from modelzoo.inference.runtimes import torch_backend

    prepared = []
    real_prepare = torch_backend.prepare_model
    monkeypatch.setattr(torch_backend, "prepare_model", lambda *a, **k: prepared.append(a) or real_prepare(*a, **k))
    result = modelzoo.evaluate(model, "vehicle-id", data_root, split="medium", trials=3, num_workers=0,
                               progress=False)
    assert len(prepared) == 1  # every trial ranks the same features
    monkeypatch.undo()
    rankings = by_hand(model, [read_dataset("vehicleid", data_root, split="medium", trial=t) for t in range(3)])
    assert result.rank1 == pytest.approx(100 * np.mean([r.cmc[0] for r in rankings]))
    assert result.rank5 == pytest.approx(100 * np.mean([r.cmc[min(4, len(r.cmc) - 1)] for r in rankings]))
    assert result.mAP == pytest.approx(100 * np.mean([r.mAP for r in rankings]))
    assert result.mINP == pytest.approx(100 * np.mean([r.mINP for r in rankings]))
    assert result.settings["trials"] == 3 and result.settings["trial_seeds"] == [0, 1, 2]
    assert result.settings["per_trial"]["rank1"] == pytest.approx([100 * r.cmc[0] for r in rankings])
    assert result.num_valid_queries == result.num_query  # the camera is the image id: no query is dropped
    assert (result.split, result.test_set) == ("medium", "vehicleid (medium)")


def test_vehicleid_trials_default_to_ten(model, data_root):
    result = modelzoo.evaluate(model, "vehicleid", data_root, split="small", num_workers=0, progress=False)
    assert result.settings["trial_seeds"] == list(range(10))


@pytest.mark.parametrize("split", ["small", "large"])
def test_veriwild_ranks_each_test_size_under_the_market_rule(model, data_root, split):
    result = modelzoo.evaluate(model, "veriwild", data_root, split=split, num_workers=0, progress=False)
    (expected,) = by_hand(model, [read_dataset("veriwild", data_root, split=split)])
    assert result.rank1 == pytest.approx(100 * expected.cmc[0]) and result.mAP == pytest.approx(100 * expected.mAP)
    assert result.mINP == pytest.approx(100 * expected.mINP)
    assert "trials" not in result.settings and result.split == split


@pytest.mark.parametrize("dataset, options, message", [
    ("market1501", {"split": "small"}, "single test set"),
    ("vehicleid", {}, "pass split="),
    ("veriwild", {"split": "small", "trials": 2}, "fixed gallery"),
])
def test_a_split_or_trials_the_dataset_lacks_is_refused_before_any_download(tmp_path, dataset, options, message):
    with pytest.raises(UnknownDatasetError, match=message):  # not a DownloadError: refused first
        modelzoo.evaluate("osnet_x0_25.market1501", dataset, tmp_path, **options)


@pytest.fixture
def vehicle_zoo(tmp_path, monkeypatch, mirror):
    """A manifest copy in which osnet_x0_25 has VehicleID and VERI-Wild checkpoints (untrained, in the mirror)."""
    folder = tmp_path / "manifest"
    shutil.copytree(REPO / "manifest", folder)
    path = folder / f"{MODEL}.json"
    data = json.loads(path.read_text())
    for key, classes in (("vehicleid", 13164), ("veriwild", 30671)):
        entry = json.loads(json.dumps(data["checkpoints"]["market1501"]))
        entry.update(trained_on=key, num_classes=classes, filename=f"{MODEL}_{key}.pth", results=[])
        data["checkpoints"][key] = entry
    path.write_text(json.dumps(data))
    monkeypatch.setenv("MODELZOO_MANIFEST_DIR", str(folder))
    manifest.reload()
    for key in ("vehicleid", "veriwild"):
        checkpoint = manifest.resolve_checkpoint(f"{MODEL}.{key}")
        torch.manual_seed(1)
        write_for_checkpoint(checkpoint, mirror, modelzoo.build(checkpoint.name).state_dict(), vintage="bare")
    yield path
    manifest.reload()


def _publish(path: Path, key: str, results: list[dict]) -> None:
    data = json.loads(path.read_text())
    data["checkpoints"][key]["results"] = results
    path.write_text(json.dumps(data))
    manifest.reload()


def test_verify_compares_r5_and_minp_where_published_for_every_split(vehicle_zoo, data_root, tmp_path, capsys):
    def measured(key, split):
        return modelzoo.evaluate(f"{MODEL}.{key}", key, data_root, split=split, trials=2, num_workers=0,
                                 progress=False) if key == "vehicleid" else \
            modelzoo.evaluate(f"{MODEL}.{key}", key, data_root, split=split, num_workers=0, progress=False)

    small, large = measured("vehicleid", "small"), measured("vehicleid", "large")
    _publish(vehicle_zoo, "vehicleid", [
        {"dataset": "vehicleid", "split": "small", "rank1": round(small.rank1, 1), "rank5": round(small.rank5, 1)},
        {"dataset": "vehicleid", "split": "large", "rank1": round(large.rank1, 1), "rank5": round(large.rank5 - 3, 1)},
    ])
    wild = measured("veriwild", "medium")
    _publish(vehicle_zoo, "veriwild", [{"dataset": "veriwild", "split": "medium", "rank1": round(wild.rank1, 1),
                                        "mAP": round(wild.mAP, 1), "mINP": round(wild.mINP + 2, 1)}])
    report_dir = tmp_path / "report"
    code = main(["verify", MODEL, "--dataset", "vehicleid", "--dataset", "veriwild", "--trials", "2",
                 "--data-root", str(data_root), "--report-dir", str(report_dir), "--workers", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and "1 passed, 2 failed" in out
    assert "Published R5" in out and "Published mINP" in out
    assert f"| {MODEL}.vehicleid | vehicleid (small) |" in out and "| pass |" in out
    rows = json.loads((report_dir / "report.json").read_text())["rows"]
    assert [(r["split"], r["passed"]) for r in rows] == [("small", True), ("large", False), ("medium", False)]
    assert set(rows[0]["published"]) == {"rank1", "rank5"} and rows[1]["difference"]["rank5"] == pytest.approx(3, abs=0.06)
    assert set(rows[2]["published"]) == {"rank1", "mAP", "mINP"}
    assert rows[2]["difference"]["mINP"] == pytest.approx(-2, abs=0.06)
    assert rows[0]["measured"]["settings"]["trials"] == 2
    assert "mean of 2 seeded trials" in (report_dir / "report.md").read_text()


def test_eval_command_takes_the_split_and_trials(vehicle_zoo, data_root, capsys):
    assert main(["eval", f"{MODEL}.vehicleid", "vehicleid", "--split", "large", "--trials", "2", "--data-root",
                 str(data_root), "--workers", "0", "--no-progress", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"] == "large" and printed["settings"]["trials"] == 2
    assert main(["eval", f"{MODEL}.vehicleid", "vehicleid", "--data-root", str(data_root), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--split" in err


def test_verify_refuses_trials_when_no_row_draws_its_gallery(tmp_path):
    from modelzoo.errors import ModelZooError
    from modelzoo.evaluation.verify import verify

    with pytest.raises(ModelZooError, match="no planned row is one"):
        verify([f"{MODEL}.market1501"], data_root=tmp_path, trials=2)
