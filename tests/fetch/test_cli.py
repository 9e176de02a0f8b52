"""``modelzoo download``, ``modelzoo import`` and ``modelzoo cache`` through ``modelzoo.cli.main``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import modelzoo

from modelzoo.testing import checkpoints as ckptgen
from modelzoo import config, fetch, manifest
from modelzoo.formats import read_state_dict
from modelzoo.cli import main
from modelzoo.formats import sha256_file
from tests.fetch.helpers import store_at

NAME, DATASET = "shufflenet", "market1501"  # a QMUL zip of a small network: real weights stay cheap


def real_state(dataset: str = DATASET) -> dict:
    """Weights that fit the architecture (the CLI checks that before it trusts a file)."""
    from modelzoo.testing.weights import deterministic_state_dict

    return deterministic_state_dict(modelzoo.build(f"{NAME}.{dataset}"))


@pytest.fixture
def loopback_manifest(loopback_server, tmp_path, monkeypatch):
    """The real manifest, with shufflenet's sources moved to the loopback server (which has none of them)."""
    folder = tmp_path / "manifest"
    shutil.copytree(config.manifest_dir(), folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    data = json.loads((folder / f"{NAME}.json").read_text())
    for key, entry in data["checkpoints"].items():
        for i, source in enumerate(entry["sources"]):
            source["url"] = f"{loopback_server.url}/{key}/{i}/{entry['filename']}"
            source["kind"] = "http"
    (folder / f"{NAME}.json").write_text(json.dumps(data))
    monkeypatch.setenv("MODELZOO_MANIFEST_DIR", str(folder))
    manifest._default_manifest.cache_clear()
    yield loopback_server
    manifest._default_manifest.cache_clear()


def mirror_with(tmp_path: Path, *datasets: str, state=None) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir(exist_ok=True)
    for dataset in datasets:
        ckptgen.write_for_checkpoint(
            manifest.resolve_checkpoint(NAME, dataset), folder, state or real_state(dataset)
        )
    return folder


def test_download_from_a_local_mirror_folder_leaves_a_verified_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELZOO_MIRROR", str(mirror_with(tmp_path, DATASET)))
    assert main(["download", NAME, DATASET, "--no-progress"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == fetch.cached_path(f"{NAME}.{DATASET}") and path.is_file()
    assert path.is_relative_to(config.checkpoints_dir())
    assert sha256_file(path) == store_at(path.parent).read_record().sha256
    assert read_state_dict(path).keys() == real_state().keys()
    assert main(["cache", "verify", NAME]) == 0
    assert "ok\tshufflenet.market1501" in capsys.readouterr().out


def test_download_from_a_loopback_server_mirror_leaves_a_verified_checkpoint(
    tmp_path, monkeypatch, capsys, loopback_server
):
    zip_path = mirror_with(tmp_path, DATASET) / "shufflenet_market_softmax.zip"
    loopback_server.serve("/zoo/shufflenet_market_softmax.zip", zip_path.read_bytes())
    monkeypatch.setenv("MODELZOO_MIRROR", loopback_server.url + "/zoo")
    assert main(["download", NAME, DATASET, "--no-progress"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "shufflenet_market_xent.pth.tar"
    assert main(["cache", "verify"]) == 0
    assert loopback_server.full_transfers("/zoo/shufflenet_market_softmax.zip") == 1


def test_download_several_datasets_and_the_default_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELZOO_MIRROR", str(mirror_with(tmp_path, "market1501", "dukemtmcreid")))
    assert main(["download", NAME, "market", "duke", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["shufflenet.market1501", "shufflenet.dukemtmcreid"]
    assert main(["download", f"{NAME}.dukemtmcreid", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == lines[1].split("\t")[1]
    assert main(["download", NAME, "--no-progress"]) == 0  # no dataset: the model's first checkpoint
    assert capsys.readouterr().out.strip() == lines[0].split("\t")[1]


def test_download_all_reports_each_failure_and_exits_1(tmp_path, monkeypatch, capsys, loopback_manifest):
    monkeypatch.setenv("MODELZOO_MIRROR", str(mirror_with(tmp_path, "market1501", "dukemtmcreid")))
    assert main(["download", NAME, "--all", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "shufflenet.market1501\t" in captured.out and "shufflenet.dukemtmcreid\t" in captured.out
    assert "shufflenet.msmt17: could not download" in captured.err
    assert "1 of 3 checkpoints failed" in captured.err


def test_when_every_source_fails_the_cli_prints_the_import_command(loopback_manifest, capsys):
    assert main(["download", NAME, DATASET, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("modelzoo: error: could not download shufflenet.market1501")
    assert f"{loopback_manifest.url}/market1501/0/shufflenet_market_softmax.zip: HTTP 404" in err
    assert "modelzoo import shufflenet market1501 /path/to/shufflenet_market_softmax.zip" in err
    assert "Traceback" not in err


def test_download_offline_without_cache_names_both_commands(monkeypatch, capsys):
    monkeypatch.setenv("MODELZOO_OFFLINE", "1")
    assert main(["download", NAME, DATASET]) == 1
    err = capsys.readouterr().err
    assert "not in the cache and offline mode is on" in err
    assert "modelzoo download shufflenet market1501" in err and "modelzoo import shufflenet market1501" in err


def test_import_then_path_list_verify_clear(tmp_path, capsys):
    zip_path = mirror_with(tmp_path, DATASET) / "shufflenet_market_softmax.zip"
    assert main(["import", NAME, "market", str(zip_path)]) == 0
    imported = Path(capsys.readouterr().out.strip())
    assert imported.is_file()

    assert main(["cache", "path", f"{NAME}.{DATASET}"]) == 0
    assert capsys.readouterr().out.strip() == str(imported)
    assert main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(config.checkpoints_dir())

    assert main(["cache", "list"]) == 0
    listing = capsys.readouterr().out
    assert "shufflenet.market1501" in listing and str(imported) in listing

    data = bytearray(imported.read_bytes())
    data[len(data) // 2] ^= 0x55
    imported.write_bytes(bytes(data))
    assert main(["cache", "verify"]) == 1
    err = capsys.readouterr().err
    assert "FAILED\tshufflenet.market1501" in err and "--force" in err

    assert main(["cache", "clear", NAME]) == 0
    assert "removed shufflenet.market1501" in capsys.readouterr().out
    assert main(["cache", "path", f"{NAME}.{DATASET}"]) == 1
    assert "is not cached; run `modelzoo download shufflenet market1501`" in capsys.readouterr().err
    assert main(["cache", "list"]) == 0
    assert "no checkpoint cached" in capsys.readouterr().out


def test_import_errors_are_one_line(tmp_path, capsys):
    assert main(["import", NAME, DATASET, str(tmp_path / "nope.zip")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("modelzoo: error: no file at") and "Traceback" not in err
    page = tmp_path / "page.zip"
    page.write_text("<html><title>Quota exceeded</title></html>")
    assert main(["import", NAME, DATASET, str(page)]) == 1
    assert "HTML page" in capsys.readouterr().err


def test_download_without_a_name_needs_all(capsys):
    assert main(["download"]) == 2
    assert "--all" in capsys.readouterr().err
