"""Live sources, honest availability, the link-rot check, and one fingerprint for the weights."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest

from modelzoo import config, fetch, manifest
from modelzoo.cli import main
from modelzoo.errors import ChecksumError
from modelzoo.fetch.probe import check_sources
from modelzoo.formats import weights_fingerprint
from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.server import Reply
from tests.fetch.helpers import FAST, bare_checkpoint, store_of, with_sources, zip_checkpoint

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "live-sources.md"
CHECKPOINTS = [c for r in manifest.models().values() for c in r.checkpoints.values()]
QMUL_ONLY = {"densenet121_fc512", "se_resnet50_fc512", "shufflenet", "squeezenet1_0_fc512", "resnet50mid"}


# --------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=lambda c: c.name)
def test_every_source_says_what_is_known_of_it(checkpoint):
    for source in checkpoint.sources:
        if "eecs.qmul.ac.uk" in source.url and not source.url.startswith("https://web.archive.org/"):
            assert source.describe_status() == "dead since 2019"
            archived = f"https://web.archive.org/web/2019id_/{source.url}"
            assert checkpoint.sources[-1].url == archived and checkpoint.sources[-1].status == "archived"
        if source.kind == "gdrive":
            assert source.status == "quota-limited"
        if source.kind == "hf":
            assert source.status == "live"
            drive = [i for i, s in enumerate(checkpoint.sources) if s.kind == "gdrive"]
            assert checkpoint.sources.index(source) < min(drive, default=99)  # the Hub ahead of Drive


def test_the_hub_files_are_exactly_the_ones_the_reference_names():
    listed = set(re.findall(r"^\| `([^`]+\.pth)` \| osnet", REFERENCE.read_text(), re.MULTILINE)) if REFERENCE.is_file() \
        else None
    if listed is None:
        pytest.skip("../shared/reference/live-sources.md is not next to this checkout")
    ours = {s.url.split("/", 4)[4].split("@")[0] for c in CHECKPOINTS for s in c.sources
            if s.url.startswith("hf://kaiyangzhou/osnet/")}
    assert ours == listed and len(ours) == 5


def test_the_checkpoints_without_a_live_source_are_the_qmul_only_ones():
    without = manifest.list_checkpoints(live=False)
    assert {name.split(".")[0] for name in without} == QMUL_ONLY and len(without) == 15
    assert set(manifest.list_checkpoints(live=True)) == set(manifest.list_checkpoints()) - set(without)


def test_list_and_info_mark_a_checkpoint_without_a_live_source(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    shufflenet = next(line for line in out.splitlines() if line.startswith("shufflenet "))
    assert shufflenet.count("§") == 3 and "§ no source believed live" in out
    assert "§" not in next(line for line in out.splitlines() if line.startswith("osnet_x1_0 "))
    assert main(["info", "shufflenet"]) == 0
    card = capsys.readouterr().out
    assert "no source believed live" in card and "[http, dead since 2019]" in card
    assert "[http, archived copy, unverified]" in card and "fingerprint not pinned" in card


def test_a_source_status_must_be_known_and_a_year_only_for_dead_hosts(tmp_path):
    data = json.loads((config.manifest_dir() / "osnet_x0_25.json").read_text())
    data["checkpoints"]["market1501"]["sources"][0]["status"] = "probably"
    with pytest.raises(manifest.ManifestError, match="status"):
        manifest.parse_model(data, "osnet_x0_25.json")
    data["checkpoints"]["market1501"]["sources"][0].update(status="live", since=2020)
    with pytest.raises(manifest.ManifestError, match="since"):
        manifest.parse_model(data, "osnet_x0_25.json")


# --------------------------------------------------------------------------- HF_ENDPOINT


def test_hf_endpoint_is_honoured_when_set_at_call_time(loopback_server, tmp_path, monkeypatch):
    data = ckptgen.checkpoint_bytes(ckptgen.toy_state_dict(seed=4), "torchreid-dict")
    commit = "0123456789abcdef0123456789abcdef01234567"
    headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
    loopback_server.route("/kz/zoo/resolve/main/w.pth", lambda request: Reply(200, data, headers))
    monkeypatch.setenv("HF_ENDPOINT", loopback_server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    checkpoint = with_sources(bare_checkpoint(), ("hf://kz/zoo/w.pth", "hf", "checkpoint"))
    path = fetch.download(checkpoint, progress=False, options=FAST)
    assert path.read_bytes() == data and loopback_server.requests_for("/kz/zoo/resolve/main/w.pth", None)


# --------------------------------------------------------------------------- sources check


@pytest.fixture
def hosts(loopback_server, state, monkeypatch):
    """A loopback server standing in for every kind of host, healthy and not."""
    data = ckptgen.checkpoint_bytes(state, "torchreid-dict")
    loopback_server.serve("/live/w.pth.tar", data)
    loopback_server.route("/moved", lambda request: Reply(302, b"", {"Location": "/live/w.pth.tar"}))
    loopback_server.route("/gone", lambda request: Reply(302, b"", {"Location": "/nowhere"}))
    quota = "<html><title>Google Drive - Quota exceeded</title>Too many users have viewed or downloaded this file</html>"
    loopback_server.route("/uc", lambda request: Reply(200, quota.encode(), {"Content-Type": "text/html"}))
    loopback_server.route("/forbidden", lambda request: Reply(403, b"<html>quota</html>", {"Content-Type": "text/html"}))
    monkeypatch.setenv("MODELZOO_GDRIVE_URL", loopback_server.url + "/uc")
    loopback_server.size = len(data)
    return loopback_server


def probe_one(hosts, url, kind="http", **changes):
    checkpoint = with_sources(bare_checkpoint(), (url, kind, "checkpoint"), **changes)
    (probe,) = check_sources([checkpoint], config.fetch_settings())
    return probe


def test_a_live_source_answers_with_its_size_and_validators(hosts):
    probe = probe_one(hosts, hosts.url + "/live/w.pth.tar")
    assert probe.ok and probe.size == hosts.size and probe.http_status == 206
    assert probe.etag and probe.last_modified
    (only,) = hosts.requests_for("/live/w.pth.tar")
    assert only.range == "bytes=0-0" and only.body_bytes <= 1  # nothing downloaded


@pytest.mark.parametrize(("path", "ok", "says"), [
    ("/moved", True, "serves the file"),
    ("/gone", False, "HTTP 404"),
    ("/forbidden", False, "HTTP 403"),
])
def test_redirects_missing_and_forbidden_files(hosts, path, ok, says):
    probe = probe_one(hosts, hosts.url + path)
    assert probe.ok is ok and says in probe.detail


def test_a_dead_host_and_a_drive_quota_page_fail(hosts):
    dead = probe_one(hosts, "http://127.0.0.1:9/w.pth.tar")  # nothing listens on the discard port
    assert not dead.ok and "connection" in dead.detail.lower()
    drive = probe_one(hosts, "https://drive.google.com/uc?id=abcdefghijkl", kind="gdrive")
    assert not drive.ok and "quota exceeded" in drive.detail.lower()


def test_a_file_whose_size_changed_fails(hosts):
    probe = probe_one(hosts, hosts.url + "/live/w.pth.tar", size=hosts.size + 1)
    assert not probe.ok and probe.size_matches is False and "the file changed" in probe.detail


def test_the_command_exits_1_when_a_checkpoint_has_no_working_source(hosts, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "manifest"
    folder.mkdir()
    for name, url in (("osnet_x0_25", hosts.url + "/live/w.pth.tar"), ("osnet_x0_5", hosts.url + "/gone")):
        data = json.loads((config.manifest_dir() / f"{name}.json").read_text())
        for checkpoint in data["checkpoints"].values():
            checkpoint["sources"] = [{"url": url, "kind": "http", "format": "checkpoint", "status": "live"}]
        (folder / f"{name}.json").write_text(json.dumps(data))
    monkeypatch.setenv("MODELZOO_MANIFEST_DIR", str(folder))
    manifest.reload()
    try:
        assert main(["sources", "check", "osnet_x0_25.market1501"]) == 0
        assert "1 of 1 checkpoints have a working source" in capsys.readouterr().out
        assert main(["sources", "check", "osnet_x0_25.market1501", "osnet_x0_5.market1501", "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
    finally:
        manifest.reload()
    assert report["without_a_working_source"] == ["osnet_x0_5.market1501"]
    assert [p["ok"] for p in report["sources"]] == [True, False]


# --------------------------------------------------------------------------- the weights fingerprint


def test_the_same_weights_in_every_container_have_one_fingerprint(tmp_path, state):
    fingerprints = set()
    for vintage in ckptgen.VINTAGES:
        path = ckptgen.write_checkpoint(tmp_path / f"{vintage}.pth", state, vintage)
        fingerprints.add(weights_fingerprint(fetch_state(path)))
    zipped = ckptgen.write_qmul_zip(tmp_path / "resnet50_fc512_market_softmax.zip", state)
    fetch.import_file(zip_checkpoint(), zipped)
    fingerprints.add(store_of(zip_checkpoint()).read_record().fingerprint)
    assert len(fingerprints) == 1
    changed = dict(state, **{"bn1.bias": state["bn1.bias"].clone()})
    changed["bn1.bias"][0] += 1e-3
    assert weights_fingerprint(changed) not in fingerprints


def fetch_state(path):
    from modelzoo.formats import read_state_dict

    return read_state_dict(path)


def test_trust_on_first_use_accepts_the_same_weights_in_another_container(tmp_path, state):
    fetch.import_file(zip_checkpoint(), ckptgen.write_qmul_zip(tmp_path / "resnet50_fc512_market_softmax.zip", state))
    fetch.clear_cache(zip_checkpoint())  # the trusted hashes stay
    resaved = ckptgen.write_checkpoint(tmp_path / "resaved.pth.tar", state, "bare")  # another file, the same weights
    fetch.import_file(zip_checkpoint(), resaved)
    fetch.clear_cache(zip_checkpoint())
    other = dict(state, **{"bn1.bias": state["bn1.bias"] + 1})
    with pytest.raises(ChecksumError, match=r"fingerprint .* not the .* trusted since"):
        fetch.import_file(zip_checkpoint(), ckptgen.write_checkpoint(tmp_path / "other.pth.tar", other, "bare"))


def test_a_pinned_fingerprint_decides_whatever_the_container(tmp_path, state):
    right = dataclasses.replace(bare_checkpoint(), weights_sha256=weights_fingerprint(state))
    fetch.import_file(right, ckptgen.write_checkpoint(tmp_path / "a.pth.tar", state, "py2"))
    assert store_of(right).read_hashes().origin == "manifest"
    wrong = dataclasses.replace(bare_checkpoint(), weights_sha256="0" * 64)
    fetch.clear_cache(wrong, forget_hashes=True)
    with pytest.raises(ChecksumError, match=f"fingerprint {weights_fingerprint(state)}, the manifest pins 0000"):
        fetch.import_file(wrong, ckptgen.write_checkpoint(tmp_path / "b.pth.tar", state, "bare"))


def test_cache_verify_checks_the_fingerprint(tmp_path, state):
    fetch.import_file(bare_checkpoint(), ckptgen.write_checkpoint(tmp_path / "a.pth.tar", state, "bare"))
    store = store_of(bare_checkpoint())
    (ok,) = fetch.verify_cached(bare_checkpoint())
    assert ok.ok
    record = json.loads((store.folder / "record.json").read_text())
    record["fingerprint"] = "f" * 64
    (store.folder / "record.json").write_text(json.dumps(record))
    (bad,) = fetch.verify_cached(bare_checkpoint())
    assert not bad.ok and "fingerprint" in bad.problem


def test_import_reports_the_fingerprint_and_info_shows_it(tmp_path, capsys):
    import modelzoo
    from modelzoo.testing.weights import deterministic_state_dict

    state = deterministic_state_dict(modelzoo.build("osnet_x0_25"))
    checkpoint = manifest.resolve_checkpoint("osnet_x0_25.market1501")
    path = ckptgen.write_for_checkpoint(checkpoint, tmp_path, state)
    assert main(["import", "osnet_x0_25", "market1501", str(path)]) == 0
    assert f"weights fingerprint {weights_fingerprint(state)}" in capsys.readouterr().err
    assert main(["info", "osnet_x0_25.market1501"]) == 0
    assert f"cached {weights_fingerprint(state)}" in capsys.readouterr().out


# --------------------------------------------------------------------------- per-source hashes


def test_a_sources_own_size_and_hash_are_checked(loopback_server, state):
    data = ckptgen.checkpoint_bytes(state, "torchreid-dict")
    url = loopback_server.serve("/w.pth.tar", data)
    for field, value, says in (("size", len(data) + 1, "this source's file has"),
                               ("sha256", "0" * 64, "for this source's file")):
        checkpoint = with_sources(bare_checkpoint(), (url, "http", "checkpoint"))
        source = dataclasses.replace(checkpoint.sources[0], **{field: value})
        with pytest.raises(Exception, match=says):
            fetch.download(dataclasses.replace(checkpoint, sources=(source,)), progress=False, options=FAST)
