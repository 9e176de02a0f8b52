"""evaluate(), verify, the report files, the doctor command and the demo, end to end.

Synthetic datasets in the real layouts, checkpoints generated in torchreid's
format and fetched through the real fetcher from a mirror or a loopback
server.  For verify, a copy of the manifest (MODELZOO_MANIFEST_DIR) holds the
published figures, so one row passes and another fails on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import modelzoo
from modelzoo.testing.checkpoints import write_for_checkpoint
from modelzoo import manifest
from modelzoo.cli import main
from modelzoo.datasets import read_dataset
from modelzoo.errors import UnknownCheckpointError
from modelzoo.evaluation import average_query_expansion, compute_distance, evaluate_rank, re_ranking
from modelzoo.inference.features import extract_features
from modelzoo.testing import synthetic

REPO = Path(__file__).resolve().parents[2]
MODEL = "osnet_x0_25"  # the smallest network: keeps these tests fast


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reid-data")
    synthetic.write_dataset("market1501", root)
    synthetic.write_dataset("dukemtmcreid", root)
    return root


def untrained(dataset: str):
    """The osnet_x0_25 checkpoint of ``dataset`` and fixed random weights for it."""
    checkpoint = manifest.resolve_checkpoint(MODEL, dataset)
    torch.manual_seed(len(dataset))
    return checkpoint, modelzoo.build(MODEL, num_classes=checkpoint.num_classes).state_dict()


@pytest.fixture
def mirror(mirror) -> Path:
    """The local mirror (tests/conftest.py), holding untrained osnet_x0_25 checkpoints for Market and Duke."""
    for dataset in ("market1501", "dukemtmcreid"):
        checkpoint, state = untrained(dataset)
        write_for_checkpoint(checkpoint, mirror, state, vintage="bare")
    return mirror


def test_evaluate_equals_the_steps_done_by_hand(data_root, mirror, monkeypatch):
    from modelzoo.inference.runtimes import torch_backend

    model = modelzoo.get(MODEL, "market1501", device="cpu", progress=False)
    prepared = []
    real_prepare = torch_backend.prepare_model
    monkeypatch.setattr(torch_backend, "prepare_model", lambda *a, **k: prepared.append(a) or real_prepare(*a, **k))
    result = modelzoo.evaluate(model, "market", data_root, device="cpu", num_workers=0, progress=False)
    assert len(prepared) == 1  # query and gallery in one pass: the model is folded and moved once
    monkeypatch.undo()
    split = read_dataset("market1501", data_root)
    transform = modelzoo.transforms(MODEL)
    qf = extract_features(model, [r.path for r in split.query], transform, num_workers=0, progress=False)
    gf = extract_features(model, [r.path for r in split.gallery], transform, num_workers=0, progress=False)
    expected = evaluate_rank(
        compute_distance(qf, gf, "euclidean").numpy(),
        np.array([r.pid for r in split.query]), np.array([r.pid for r in split.gallery]),
        np.array([r.camid for r in split.query]), np.array([r.camid for r in split.gallery]),
    )
    assert result.rank1 == pytest.approx(100 * expected.cmc[0])
    assert result.mAP == pytest.approx(100 * expected.mAP)
    assert result.mINP == pytest.approx(100 * expected.mINP)
    assert (result.num_query, result.num_gallery) == (len(split.query), len(split.gallery))
    assert result.num_valid_queries == expected.num_valid_queries
    assert result.checkpoint == f"{MODEL}.market1501" and result.settings["metric"] == "euclidean"
    assert result.rank1 <= result.rank5 <= result.rank10 <= result.rank20


def test_evaluate_by_name_takes_the_checkpoint_trained_on_the_dataset(data_root, mirror):
    result = modelzoo.evaluate(MODEL, "duke", data_root, device="cpu", num_workers=0, progress=False)
    assert result.checkpoint == f"{MODEL}.dukemtmcreid" and result.dataset == "dukemtmcreid"


def test_evaluate_a_model_without_a_checkpoint_for_the_dataset_says_how(data_root):
    with pytest.raises(UnknownCheckpointError, match=r"osnet_ibn_x1_0\.market1501"):
        modelzoo.evaluate("osnet_ibn_x1_0", "msmt17", data_root)


def test_rerank_changes_the_ranking_but_keeps_the_protocol(data_root, mirror):
    model = modelzoo.get(MODEL, "market1501", device="cpu", progress=False)
    plain = modelzoo.evaluate(model, "market1501", data_root, num_workers=0, progress=False)
    reranked = modelzoo.evaluate(model, "market1501", data_root, num_workers=0, progress=False, rerank=True)
    assert reranked.num_valid_queries == plain.num_valid_queries
    assert reranked.settings["rerank"] is True
    assert 0 < reranked.mAP <= 100
    assert plain.settings["aqe"] is plain.settings["flip"] is plain.settings["rerank"] is False  # the published setting


def test_rerank_aqe_and_flip_equal_the_steps_done_by_hand(data_root, mirror):
    model = modelzoo.get(MODEL, "market1501", device="cpu", progress=False)
    result = modelzoo.evaluate(model, "market1501", data_root, device="cpu", num_workers=0, progress=False,
                               rerank=True, aqe=True, flip=True)
    assert result.settings["rerank"] is result.settings["aqe"] is result.settings["flip"] is True
    split = read_dataset("market1501", data_root)
    paths = [r.path for r in split.query] + [r.path for r in split.gallery]
    features = extract_features(model, paths, modelzoo.transforms(MODEL), num_workers=0, progress=False, flip=True)
    qf, gf = average_query_expansion(features[: len(split.query)], features[len(split.query):])
    expected = evaluate_rank(
        re_ranking(compute_distance(qf, gf), compute_distance(qf, qf), compute_distance(gf, gf)),
        np.array([r.pid for r in split.query]), np.array([r.pid for r in split.gallery]),
        np.array([r.camid for r in split.query]), np.array([r.camid for r in split.gallery]),
    )
    assert result.rank1 == pytest.approx(100 * expected.cmc[0])
    assert result.mAP == pytest.approx(100 * expected.mAP)
    assert result.mINP == pytest.approx(100 * expected.mINP)


@pytest.fixture
def manifest_copy(tmp_path, monkeypatch):
    """A writable copy of the manifest, active for the test, forgotten afterwards."""
    folder = tmp_path / "manifest"
    shutil.copytree(REPO / "manifest", folder)
    monkeypatch.setenv("MODELZOO_MANIFEST_DIR", str(folder))
    manifest.reload()
    yield folder
    manifest.reload()


def _publish(folder: Path, dataset: str, rank1: float, mAP: float) -> None:
    path = folder / f"{MODEL}.json"
    data = json.loads(path.read_text())
    data["checkpoints"][dataset]["results"] = [{"dataset": dataset, "rank1": rank1, "mAP": mAP}]
    path.write_text(json.dumps(data))
    manifest.reload()


def test_verify_passes_a_matching_row_and_fails_another(data_root, loopback_server, manifest_copy, tmp_path,
                                                        monkeypatch, capsys):
    # The checkpoints come from a loopback HTTP mirror through the real fetcher.
    served = tmp_path / "served"
    served.mkdir()
    for dataset in ("market1501", "dukemtmcreid"):
        checkpoint, state = untrained(dataset)
        path = write_for_checkpoint(checkpoint, served, state, vintage="torchreid-dict")
        loopback_server.serve("/m/" + path.name, path.read_bytes())
    monkeypatch.setenv("MODELZOO_MIRROR", loopback_server.url + "/m/")
    market = modelzoo.evaluate(MODEL, "market1501", data_root, num_workers=0, progress=False)
    duke = modelzoo.evaluate(MODEL, "dukemtmcreid", data_root, num_workers=0, progress=False)
    _publish(manifest_copy, "market1501", round(market.rank1 + 0.3, 1), round(market.mAP - 0.2, 1))  # within 0.5
    _publish(manifest_copy, "dukemtmcreid", round(duke.rank1 - 3.0, 1), round(duke.mAP, 1))  # R1 off by 3
    report_dir = tmp_path / "report"
    code = main(["verify", f"{MODEL}.market1501", f"{MODEL}.dukemtmcreid", "--data-root", str(data_root),
                 "--report-dir", str(report_dir),
                 "--workers", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "| osnet_x0_25.market1501 | market1501 |" in out and "| pass |" in out
    assert "| osnet_x0_25.dukemtmcreid | dukemtmcreid |" in out and "| FAIL |" in out
    assert "+3.0" in out and "1 passed, 1 failed" in out
    report = json.loads((report_dir / "report.json").read_text())
    assert [row["passed"] for row in report["rows"]] == [True, False]
    assert report["rows"][0]["measured"]["rank1"] == pytest.approx(market.rank1)
    assert report["environment"]["torch"] == torch.__version__ and report["environment"]["cpu"]
    assert report["rows"][0]["measured"]["settings"]["backend"] == "torch"
    assert report["rows"][0]["measured"]["settings"]["precision"] == "fp32"
    assert "| FAIL |" in (report_dir / "report.md").read_text()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (report_dir / "cmc.png").exists()
    else:
        assert (report_dir / "cmc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verify_reports_a_missing_dataset_as_a_failed_row(tmp_path, mirror, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    code = main(["verify", f"{MODEL}.market1501", "--data-root", str(empty), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and "| error |" in out and "0 passed, 1 failed" in out


def test_eval_command_prints_the_result(data_root, mirror, capsys):
    assert main(["eval", MODEL, "market", "--data-root", str(data_root), "--workers", "0", "--no-progress",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["checkpoint"] == f"{MODEL}.market1501" and len(printed["cmc"]) > 0


def test_eval_command_passes_aqe_and_flip_on(data_root, mirror, capsys):
    assert main(["eval", MODEL, "market", "--data-root", str(data_root), "--workers", "0", "--no-progress",
                 "--json", "--aqe", "--flip"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["aqe"] is settings["flip"] is True and settings["rerank"] is False


@pytest.mark.slow
def test_eval_with_a_compiled_backend_records_it_and_ranks_as_torch_does(data_root, mirror, capsys):
    base = ["eval", MODEL, "market", "--data-root", str(data_root), "--workers", "0", "--no-progress", "--json"]
    assert main(base) == 0
    with_torch = json.loads(capsys.readouterr().out)
    assert main([*base, "--backend", "openvino"]) == 0
    with_openvino = json.loads(capsys.readouterr().out)
    assert with_openvino["settings"]["backend"] == "openvino" and with_openvino["settings"]["precision"] == "fp32"
    for metric in ("rank1", "mAP", "mINP"):
        assert with_openvino[metric] == pytest.approx(with_torch[metric], abs=1e-6)


def test_doctor_command_exit_codes(data_root, tmp_path, capsys):
    assert main(["doctor", "market1501", "--data-root", str(data_root)]) == 0
    assert main(["doctor", "msmt17", "--data-root", str(tmp_path)]) == 1
    assert "msmt17" in capsys.readouterr().out.lower()


def test_demo_runs_from_a_fresh_cache_with_only_its_loopback_server(tmp_path):
    # conftest refuses every non-loopback connection, so passing proves no network is needed
    from modelzoo.demo import run_demo

    lines: list[str] = []
    environment = dict(os.environ)
    assert run_demo(workdir=tmp_path, say=lines.append) == 0
    assert dict(os.environ) == environment  # the cache and mirror were arguments
    text = "\n".join(lines)
    assert "SYNTHETIC DATA" in text and "567 tensors loaded" in text
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert "SYNTHETIC DATA" in report["note"] and report["rows"][0]["measured"]["num_query"] > 0
    assert (tmp_path / "cache" / "checkpoints" / MODEL).is_dir()
    assert run_demo(workdir=tmp_path, say=lines.append) == 0  # a second run in the same folder works too


def torchrun(args: list[str], timeout: int = 240):
    """``python -m torch.distributed.run --nproc_per_node=2 -m modelzoo ARGS`` on two CPU ranks (gloo)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "modelzoo", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_eval_under_torchrun_splits_the_images_and_prints_the_single_process_result(data_root, mirror):
    """Two CPU ranks: the features are split and gathered, rank 0 alone prints, same numbers."""
    done = torchrun(["eval", MODEL, "market", "--data-root", str(data_root), "--device", "cpu", "--workers", "0",
                     "--no-progress", "--json"])
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    printed = json.loads(done.stdout)  # one JSON document: rank 1 printed nothing
    assert printed["settings"]["processes"] == 2

    alone = modelzoo.evaluate(MODEL, "market", data_root, device="cpu", num_workers=0, progress=False)
    assert alone.settings["processes"] == 1
    for key in ("rank1", "rank5", "mAP", "mINP", "num_query", "num_gallery", "num_valid_queries"):
        assert printed[key] == pytest.approx(getattr(alone, key), abs=1e-6), key


@pytest.mark.slow
def test_verify_under_torchrun_reports_once_and_fails_a_row_on_every_rank(data_root, mirror, tmp_path):
    """A row every rank can run, and one whose dataset is missing: the ranks stay in step."""
    report_dir = tmp_path / "report"
    done = torchrun(["verify", f"{MODEL}.market1501", f"{MODEL}.msmt17", "--data-root", str(data_root),
                     "--device", "cpu", "--workers", "0", "--no-progress", "--report-dir", str(report_dir)])
    assert done.returncode == 1, f"a failed row gives exit code 1:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.count("| osnet_x0_25.market1501 | market1501 |") == 1  # rank 0 alone reports
    rows = json.loads((report_dir / "report.json").read_text())["rows"]
    assert [row["checkpoint"] for row in rows] == [f"{MODEL}.market1501", f"{MODEL}.msmt17"]
    assert rows[1]["error"] and "failed on rank" in rows[1]["error"] and "msmt17" in rows[1]["error"].lower()
    alone = modelzoo.evaluate(MODEL, "market", data_root, device="cpu", num_workers=0, progress=False)
    assert rows[0]["measured"]["rank1"] == pytest.approx(alone.rank1, abs=1e-6)
    assert rows[0]["measured"]["mAP"] == pytest.approx(alone.mAP, abs=1e-6)
    assert rows[0]["measured"]["settings"]["processes"] == 2


@pytest.mark.slow
def test_demo_runs_a_fastreid_checkpoint_from_its_era_layout(tmp_path, capsys):
    """`modelzoo demo --model bot_r50`: the served file has v0.1.1's keys and pixel buffers; get() reads them."""
    assert main(["demo", "--model", "bot_r50", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(fastreid layout, era 0.1.1): market_bot_R50.pth" in out
    served = torch.load(tmp_path / "mirror" / "market_bot_R50.pth", weights_only=True)["model"]
    assert {"pixel_mean", "pixel_std", "heads.bnneck.weight", "heads.classifier.weight"} <= set(served)
    assert f"{len(served) - 2} tensors loaded" in out  # every tensor but the two checked pixel buffers
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["rows"][0]["published"] == {"rank1": 94.4, "mAP": 86.1, "mINP": 59.4}
    assert list((tmp_path / "cache" / "checkpoints" / "bot_r50" / "market1501").glob("*.safetensors"))
