"""hf:// sources through huggingface_hub, against a loopback stand-in for the Hub."""

from __future__ import annotations

import functools
import hashlib

import pytest

from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.server import Reply
from modelzoo import fetch
from modelzoo.formats import read_state_dict
from modelzoo.errors import DownloadError, NotCachedError
from modelzoo.fetch import hf
from modelzoo.fetch.hf import HfLocation, fetch_hf, parse_hf_url
from tests.fetch.helpers import FAST, bare_checkpoint, with_sources

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("hf://kz/reid/a.pth", HfLocation("kz/reid", "a.pth", None)),
        ("hf://kz/reid/market/a.pth.tar@v1.0", HfLocation("kz/reid", "market/a.pth.tar", "v1.0")),
        ("hf://kz/reid/a.pth@refs/pr/3", HfLocation("kz/reid", "a.pth", "refs/pr/3")),
        (f"hf://kz/reid/a.pth@{COMMIT}", HfLocation("kz/reid", "a.pth", COMMIT)),
    ],
)
def test_hf_urls_are_parsed(url, expected):
    assert parse_hf_url(url) == expected


@pytest.mark.parametrize(
    "url", ["hf://kz/reid", "hf://kz//a.pth", "https://huggingface.co/kz/reid/a.pth", "hf://kz/reid/a.pth@"]
)
def test_malformed_hf_urls_are_refused(url):
    with pytest.raises(DownloadError):
        parse_hf_url(url)


@pytest.fixture
def hub(loopback_server, tmp_path, monkeypatch):
    """A loopback Hub holding kz/reid-zoo/mobilenetv2/market.pth.tar; fetch_hf pointed at it."""
    data = ckptgen.checkpoint_bytes(ckptgen.toy_state_dict(seed=4), "torchreid-dict")

    def resolve(request):
        etag = hashlib.sha256(data).hexdigest()
        return Reply(
            200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        )

    loopback_server.route("/kz/reid-zoo/resolve/main/mobilenetv2/market.pth.tar", resolve)
    loopback_server.data = data
    loopback_server.hf_cache = tmp_path / "hf-cache"
    patched = functools.partial(fetch_hf, endpoint=loopback_server.url, cache_dir=loopback_server.hf_cache)
    monkeypatch.setattr(hf, "fetch_hf", patched)
    return loopback_server


def hf_checkpoint(path="mobilenetv2/market.pth.tar"):
    return with_sources(bare_checkpoint(), (f"hf://kz/reid-zoo/{path}", "hf", "checkpoint"))


def test_fetch_hf_downloads_into_the_hub_cache_and_reads_it_offline(hub):
    path = hf.fetch_hf("hf://kz/reid-zoo/mobilenetv2/market.pth.tar", offline=False)
    assert path.read_bytes() == hub.data and path.is_relative_to(hub.hf_cache)
    requests = len(hub.log)
    assert hf.fetch_hf("hf://kz/reid-zoo/mobilenetv2/market.pth.tar", offline=True) == path
    assert len(hub.log) == requests


def test_download_through_an_hf_source_then_offline_from_the_hub_cache(hub, monkeypatch):
    path = fetch.download(hf_checkpoint(), progress=False, options=FAST)
    assert path.name == "mobilenetv2_1dot0_market.pth.tar"
    assert read_state_dict(path).keys() == ckptgen.toy_state_dict().keys()
    fetch.clear_cache(hf_checkpoint())
    requests = len(hub.log)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch.download(hf_checkpoint(), progress=False, options=FAST) == path  # from the Hub's own cache
    assert len(hub.log) == requests


def test_a_file_missing_on_the_hub_is_a_download_error(hub):
    with pytest.raises(DownloadError, match="Hugging Face Hub"):
        fetch.download(hf_checkpoint("nothing/here.pth"), progress=False, options=FAST)


def test_offline_and_not_in_the_hub_cache(hub, monkeypatch):
    monkeypatch.setenv("MODELZOO_OFFLINE", "1")
    with pytest.raises(NotCachedError, match="not in the local Hugging Face cache"):
        fetch.download(hf_checkpoint(), progress=False, options=FAST)
    assert hub.log == []
