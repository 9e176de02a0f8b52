"""A hostile or broken network: every download is bounded in size and time, never spliced, and any
failure of one source is that source's failure (the next one is tried)."""

from __future__ import annotations

import gzip
import threading
import time

import pytest

from modelzoo import fetch
from modelzoo.errors import CacheError, DownloadError
from modelzoo.fetch.http import FetchOptions
from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.server import Reply, content_length, drop_after
from tests.fetch.helpers import FAST, bare_checkpoint, store_of, with_sources

NAME = "/bare/mobilenetv2_1dot0_market.pth.tar"


def bare(server, state, path=NAME, **options):
    """Serve a bare checkpoint; returns (the checkpoint with that one source, its bytes)."""
    data = ckptgen.checkpoint_bytes(state, "torchreid-dict")
    url = server.serve(path, data, **options)
    return with_sources(bare_checkpoint(), (url, "http", "checkpoint")), data


def assert_state(path, state):
    from modelzoo.formats import read_state_dict

    loaded = read_state_dict(path)
    assert list(loaded) == list(state) and all((loaded[k] == v).all() for k, v in state.items())


# --------------------------------------------------------------------------- size


def test_a_huge_content_length_is_refused_before_the_body(loopback_server, state, monkeypatch):
    checkpoint, data = bare(loopback_server, state)
    loopback_server.fail(NAME, content_length(10 << 30))  # announces 10 GB
    written = []
    monkeypatch.setattr("modelzoo.fetch.http.open_partial", lambda *a, **k: written.append(a) or open(*a))
    with pytest.raises(DownloadError, match=f"announces {10 << 30} bytes, more than the {2 << 30}"):
        fetch.download(checkpoint, progress=False, options=FAST)
    assert written == []  # nothing of the body was written


def test_an_endless_body_without_length_is_cut_at_the_ceiling(loopback_server, monkeypatch):
    monkeypatch.setenv("MODELZOO_MAX_DOWNLOAD_BYTES", "300000")

    def endless(request):
        return Reply(200, b"\x80" + b"\0" * 2_000_000, {"Content-Length": ""})

    url = loopback_server.route("/endless", endless)
    checkpoint = with_sources(bare_checkpoint(), (url, "http", "checkpoint"))
    with pytest.raises(DownloadError, match="grew past 300000 bytes"):
        fetch.download(checkpoint, progress=False, options=FAST)
    assert not list(store_of(checkpoint).folder.glob("*.incomplete*"))


def test_a_gzip_bomb_is_counted_as_it_unpacks(loopback_server, monkeypatch):
    monkeypatch.setenv("MODELZOO_MAX_DOWNLOAD_BYTES", "1000000")
    bomb = gzip.compress(b"\0" * 20_000_000)  # 20 kB that unpack to 20 MB
    url = loopback_server.serve("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    checkpoint = with_sources(bare_checkpoint(), (url, "http", "checkpoint"))
    with pytest.raises(DownloadError, match="grew past 1000000 bytes"):
        fetch.download(checkpoint, progress=False, options=FAST)


def test_the_manifest_size_is_the_cap_when_known(loopback_server, state):
    checkpoint, data = bare(loopback_server, state)
    with pytest.raises(DownloadError, match=f"more than the {len(data) - 1}"):
        fetch.download(with_sources(checkpoint, *[(s.url, s.kind, s.format) for s in checkpoint.sources],
                                    size=len(data) - 1), progress=False, options=FAST)


# --------------------------------------------------------------------------- time


def test_a_trickling_server_is_cut_by_the_low_speed_limit(loopback_server, state):
    checkpoint, _ = bare(loopback_server, state, chunk=64, delay=0.2)  # about 300 bytes/s
    slow = FetchOptions(read_timeout=5, retries=0, low_speed_limit=5000, low_speed_time=0.6, chunk_size=4096)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="too slow"):
        fetch.download(checkpoint, progress=False, options=slow)
    assert time.monotonic() - started < 5


def test_waiting_for_a_held_lock_names_the_holder_and_gives_up(loopback_server, state, monkeypatch):
    from filelock import FileLock

    monkeypatch.setenv("MODELZOO_LOCK_TIMEOUT", "1.5")
    checkpoint, _ = bare(loopback_server, state)
    store = store_of(checkpoint)
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.locked():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        with pytest.raises(CacheError, match=r"gave up after 2 s .*held by process \d+ on .* since"):
            fetch.download(checkpoint, progress=False, options=FAST)
    finally:
        release.set()
        holder.join()
    assert FileLock(str(store.folder / ".lock")).acquire(timeout=1)  # free again


# --------------------------------------------------------------------------- resume


def test_a_file_that_changed_since_the_cut_is_fetched_whole_not_spliced(loopback_server, state):
    first, data = bare(loopback_server, state)
    loopback_server.fail(NAME, drop_after(len(data) // 2))
    with pytest.raises(DownloadError):
        fetch.download(first, progress=False, options=FetchOptions(retries=0, backoff=0.01, chunk_size=4096))
    assert list(store_of(first).folder.glob("*.incomplete"))  # half of the old file, kept to resume
    other = ckptgen.toy_state_dict(seed=7)
    bare(loopback_server, other)  # the host now serves another file at the same URL
    assert_state(fetch.download(first, progress=False, options=FAST), other)
    resume = loopback_server.requests_for(NAME)[-1]
    assert resume.range and resume.headers.get("if-range") and resume.status == 200  # If-Range refused the splice


def test_a_partial_without_validators_restarts_from_zero(loopback_server, state):
    checkpoint, data = bare(loopback_server, state, validators=False)
    loopback_server.fail(NAME, drop_after(len(data) // 2))
    with pytest.raises(DownloadError):
        fetch.download(checkpoint, progress=False, options=FetchOptions(retries=0, backoff=0.01, chunk_size=4096))
    assert_state(fetch.download(checkpoint, progress=False, options=FAST), state)
    assert loopback_server.requests_for(NAME)[-1].range is None


def test_retry_after_is_honoured_up_to_its_cap(loopback_server, state):
    checkpoint, _ = bare(loopback_server, state)

    answers = iter([Reply(503, b"busy", {"Retry-After": "1"})])

    def busy_once(request):
        return next(answers, None) or Reply(200, ckptgen.checkpoint_bytes(state, "torchreid-dict"))

    url = loopback_server.route("/busy", busy_once)
    started = time.monotonic()
    fetch.download(with_sources(checkpoint, (url, "http", "checkpoint")), progress=False,
                   options=FetchOptions(retries=2, backoff=0.01, max_retry_after=30))
    assert time.monotonic() - started >= 0.9  # waited the server's second, not the 0.01 s backoff


# --------------------------------------------------------------------------- request errors


def redirect(to):
    return lambda request: Reply(302, b"", {"Location": to})


@pytest.mark.parametrize("make_bad", [
    lambda server: server.route("/loop", redirect("/loop")),
    lambda server: server.route("/to-file", redirect("file:///etc/passwd")),
    lambda server: server.route("/to-ftp", redirect("ftp://127.0.0.1/x")),
    lambda server: server.serve("/not-gzip", b"plain bytes", headers={"Content-Encoding": "gzip"}),
    lambda server: "http://",
    lambda server: "http://[::1",
    lambda server: "http://127.0.0.1:99999/x",
], ids=["redirect-loop", "redirect-to-file", "redirect-to-ftp", "bad-gzip", "no-host", "bad-ipv6", "bad-port"])
def test_a_broken_source_is_that_sources_failure_and_the_next_one_is_used(loopback_server, state, make_bad):
    checkpoint, _ = bare(loopback_server, state)
    bad_url = make_bad(loopback_server)
    both = with_sources(checkpoint, (bad_url, "http", "checkpoint"), (checkpoint.sources[0].url, "http", "checkpoint"))
    assert_state(fetch.download(both, progress=False, options=FAST), state)
    assert store_of(both).read_record().source == checkpoint.sources[0].url


@pytest.mark.parametrize("mirror", ["http://", "http://[::1", "http://127.0.0.1:99999/"])
def test_a_malformed_mirror_is_listed_as_failed(loopback_server, state, mirror, monkeypatch):
    checkpoint, _ = bare(loopback_server, state)
    monkeypatch.setenv("MODELZOO_MIRROR", mirror)
    assert_state(fetch.download(checkpoint, progress=False, options=FAST), state)


def test_a_junk_drive_endpoint_fails_the_drive_source_only(loopback_server, state, monkeypatch):
    checkpoint, _ = bare(loopback_server, state)
    monkeypatch.setenv("MODELZOO_GDRIVE_URL", "ftp://[not a url")
    drive = with_sources(checkpoint, ("https://drive.google.com/uc?id=abcdefghijk", "gdrive", "checkpoint"))
    with pytest.raises(DownloadError, match="MODELZOO_GDRIVE_URL"):
        fetch.download(drive, progress=False, options=FAST)
    both = with_sources(checkpoint, ("https://drive.google.com/uc?id=abcdefghijk", "gdrive", "checkpoint"),
                        (checkpoint.sources[0].url, "http", "checkpoint"))
    assert_state(fetch.download(both, progress=False, options=FAST), state)


def test_after_a_redirect_the_record_names_where_the_bytes_came_from(loopback_server, state):
    checkpoint, _ = bare(loopback_server, state)
    url = loopback_server.route("/moved", redirect(NAME))
    fetch.download(with_sources(checkpoint, (url, "http", "checkpoint")), progress=False, options=FAST)
    assert store_of(checkpoint).read_record().source == f"{url} (redirected to {loopback_server.url}{NAME})"


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["evil\0.pth.tar", "x" * 300 + ".pth.tar", "../../escape.pth.tar"])
def test_a_server_chosen_name_that_is_not_plain_is_not_used(loopback_server, state, name):
    from urllib.parse import quote

    from modelzoo.manifest import resolve_checkpoint

    zip_entry = resolve_checkpoint("resnet50_fc512", "market1501")  # bare files of zip entries take the server's name
    data = ckptgen.checkpoint_bytes(state, "torchreid-dict")
    disposition = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    url = loopback_server.serve("/named", data, headers={"Content-Disposition": disposition})
    path = fetch.download(with_sources(zip_entry, (url, "http", "checkpoint")), progress=False, options=FAST)
    assert path.name == "resnet50_fc512_market_softmax.pth.tar"  # the manifest's name
