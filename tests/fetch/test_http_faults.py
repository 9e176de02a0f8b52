"""Downloads over a real loopback HTTP server with injected faults."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import torch

from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.server import content_length, drop_after, html, ignore_range, stall, stall_body, status
from modelzoo import fetch
from modelzoo.formats import read_state_dict
from modelzoo.errors import DownloadError
from modelzoo.formats import sha256_file
from tests.fetch.helpers import FAST, bare_checkpoint, store_at, store_of, with_sources, zip_checkpoint


def served_zip(server, state, path="/qmul/resnet50_fc512_market_softmax.zip", **options):
    """Serve a QMUL-style zip; returns (checkpoint with that one source, zip bytes)."""
    data = ckptgen.write_qmul_zip(server.tmp / "resnet50_fc512_market_softmax.zip", state).read_bytes()
    url = server.serve(path, data, **options)
    return with_sources(zip_checkpoint(), (url, "http", "zip")), data


@pytest.fixture
def server(loopback_server, tmp_path):
    loopback_server.tmp = tmp_path
    return loopback_server


def assert_cached_weights(path, state):
    assert path.is_file() and path.name == "resnet50_fc512_market_xent.pth.tar"
    out = read_state_dict(path)
    assert all(torch.equal(out[k], state[k]) for k in state)


def range_start(request) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", request.range or "")
    assert match, request.range
    return int(match.group(1))


def no_partials(checkpoint):
    return not list(store_of(checkpoint).folder.glob("*.incomplete"))


def test_a_plain_download_is_extracted_verified_and_recorded(server, state):
    checkpoint, data = served_zip(server, state)
    path = fetch.download(checkpoint, progress=False, options=FAST)
    assert_cached_weights(path, state)
    record = store_at(path.parent).read_record()
    assert record.sha256 == sha256_file(path) and record.served_format == "zip"
    assert record.served_sha256 == hashlib.sha256(data).hexdigest()
    assert fetch.cached_path(checkpoint) == path
    assert no_partials(checkpoint)
    assert fetch.download(checkpoint, progress=False, options=FAST) == path
    assert server.full_transfers("/qmul/resnet50_fc512_market_softmax.zip") == 1  # the second call used the cache


def test_a_connection_dropped_mid_body_resumes_with_a_range_request(server, state):
    checkpoint, data = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", drop_after(len(data) // 2))
    path = fetch.download(checkpoint, progress=False, options=FAST)
    assert_cached_weights(path, state)
    first, second = server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")
    assert first.range is None and first.body_bytes == len(data) // 2
    resumed_at = range_start(second)
    assert 0 < resumed_at <= len(data) // 2  # whole chunks that arrived were kept
    assert second.status == 206 and second.body_bytes == len(data) - resumed_at


def test_a_server_that_ignores_range_gets_a_clean_restart(server, state):
    checkpoint, data = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", drop_after(len(data) // 2), ignore_range())
    path = fetch.download(checkpoint, progress=False, options=FAST)
    assert_cached_weights(path, state)
    second = server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")[1]
    assert second.range is not None and second.status == 200 and second.complete


def test_500_then_success_is_retried(server, state):
    checkpoint, _ = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", status(500), status(503))
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
    assert [r.status for r in server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")] == [500, 503, 200]


def test_5xx_forever_gives_up_after_the_retries(server, state):
    checkpoint, _ = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", *[status(502)] * 10)
    with pytest.raises(DownloadError, match=r"HTTP 502.*gave up after 3 attempts"):
        fetch.download(checkpoint, progress=False, options=FAST)
    assert len(server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")) == FAST.retries + 1
    assert fetch.cached_path(checkpoint) is None


def test_404_is_not_retried_and_the_next_source_is_used(server, state, caplog):
    served_zip(server, state, path="/good/resnet50_fc512_market_softmax.zip")
    checkpoint = with_sources(
        zip_checkpoint(),
        (server.url + "/dead/resnet50_fc512_market_softmax.zip", "http", "zip"),
        (server.url + "/good/resnet50_fc512_market_softmax.zip", "http", "zip"),
    )
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
    assert len(server.requests_for("/dead/resnet50_fc512_market_softmax.zip")) == 1
    assert store_of(checkpoint).read_record().source.endswith(
        "/good/resnet50_fc512_market_softmax.zip"
    )
    warning = next(r for r in caplog.records if r.levelname == "WARNING" and r.name == "modelzoo.fetch.download")
    assert "/dead/resnet50_fc512_market_softmax.zip: HTTP 404" in warning.getMessage()


def test_a_response_slower_than_the_read_timeout_is_retried(server, state):
    checkpoint, _ = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", stall(FAST.read_timeout * 3))
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
    assert len(server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")) == 2


def test_a_body_that_stalls_times_out_and_resumes(server, state):
    checkpoint, _ = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", stall_body(4096, FAST.read_timeout * 3))
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
    second = server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")[1]
    assert 0 < range_start(second) <= 4096 and second.status == 206


def test_always_too_slow_is_reported_as_a_timeout(server, state):
    checkpoint, _ = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", *[stall(FAST.read_timeout * 2)] * 3)
    with pytest.raises(DownloadError, match="timed out"):
        fetch.download(checkpoint, progress=False, options=FAST)


def test_a_content_length_larger_than_the_body_resumes(server, state):
    checkpoint, data = served_zip(server, state)
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", content_length(len(data) + 1000))
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
    second = server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")[1]
    assert 0 < range_start(second) <= len(data) and second.status == 206


def test_a_content_length_smaller_than_the_file_never_caches_a_truncated_file(server, state):
    """The client stops at the announced length: the short file is refused, the next source used."""
    checkpoint, data = served_zip(server, state)
    checkpoint = with_sources(
        checkpoint,
        (server.url + "/qmul/resnet50_fc512_market_softmax.zip", "http", "zip"),
        (
            server.serve("/bare/resnet50_fc512_market_xent.pth.tar", ckptgen.checkpoint_bytes(state, "legacy")),
            "http",
            "checkpoint",
        ),
    )
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", content_length(len(data) - 500))
    path = fetch.download(checkpoint, progress=False, options=FAST)
    assert store_at(path.parent).read_record().source.endswith(".pth.tar")
    assert no_partials(checkpoint)


def test_a_bare_checkpoint_truncated_by_a_short_content_length_is_refused(server, state):
    data = ckptgen.checkpoint_bytes(state, "legacy")
    url = server.serve("/m.pth.tar", data)
    checkpoint = with_sources(bare_checkpoint(), (url, "http", "checkpoint"))
    server.fail("/m.pth.tar", content_length(len(data) - 100))
    with pytest.raises(DownloadError, match="truncated"):
        fetch.download(checkpoint, progress=False, options=FAST)
    assert fetch.cached_path(checkpoint) is None
    assert no_partials(checkpoint)  # a refused file is deleted, never resumed


def test_an_html_page_with_status_200_is_never_cached(server, state):
    checkpoint, _ = served_zip(server, state)
    page = "<!DOCTYPE html><html><head><title>Hotel WiFi - log in</title></head><body>Accept terms</body></html>"
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", *[html(page)] * 5)
    with pytest.raises(DownloadError, match="HTML page.*Hotel WiFi"):
        fetch.download(checkpoint, progress=False, options=FAST)
    assert fetch.cached_path(checkpoint) is None
    assert not any(p.name.endswith((".pth.tar", ".zip")) for p in store_of(checkpoint).folder.iterdir())


def test_an_html_page_does_not_destroy_a_resumable_partial(server, state):
    checkpoint, data = served_zip(server, state)
    page = "<html><title>captive portal</title></html>"
    server.fail("/qmul/resnet50_fc512_market_softmax.zip", drop_after(3 * 4096 + 100), html(page))
    with pytest.raises(DownloadError):
        fetch.download(checkpoint, progress=False, options=FAST)
    partials = list(store_of(checkpoint).folder.glob("*.incomplete"))
    assert len(partials) == 1 and partials[0].read_bytes() == data[: 3 * 4096]
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
    assert server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")[-1].range == f"bytes={3 * 4096}-"


def test_a_complete_partial_left_by_a_crash_is_finished_without_refetching(server, state):
    checkpoint, data = served_zip(server, state)
    store = store_of(checkpoint)
    store.folder.mkdir(parents=True)
    from modelzoo.fetch.download import _source_key

    partial = store.partial_path(_source_key(checkpoint.sources[0].url))
    partial.write_bytes(data)  # a crash leaves the partial and the validators of its response
    etag = f'"{hashlib.sha1(data).hexdigest()}"'
    store.resume_record_path(partial).write_text(json.dumps({"validator": etag}))
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
    (only,) = server.requests_for("/qmul/resnet50_fc512_market_softmax.zip")
    assert only.status == 416 and only.body_bytes == 0


def test_a_bare_drive_style_copy_is_cached_under_the_served_name(server, state):
    data = ckptgen.checkpoint_bytes(state, "py2")
    url = server.serve(
        "/bare", data, headers={"Content-Disposition": 'attachment; filename="resnet50_fc512_market_xent.pth.tar"'}
    )
    checkpoint = with_sources(zip_checkpoint(), (url, "http", "checkpoint"))
    assert_cached_weights(fetch.download(checkpoint, progress=False, options=FAST), state)
