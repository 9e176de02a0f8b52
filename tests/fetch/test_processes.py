"""Several processes at once, and a process killed mid-download."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.server import stall_body
from modelzoo import fetch
from modelzoo.formats import read_state_dict
from modelzoo.formats import sha256_file
from tests.fetch.helpers import FAST, store_at, store_of, zip_checkpoint

ROOT = Path(__file__).resolve().parents[2]
ZIP = "/zoo/resnet50_fc512_market_softmax.zip"
CHUNK = 8192

# Each child announces itself, then asks for the same checkpoint as the others.
CHILD = """
import hashlib, json, sys
from pathlib import Path
from modelzoo import fetch
from modelzoo.fetch import FetchOptions
from modelzoo.manifest import resolve_checkpoint
Path(sys.argv[1]).write_text("ready")
options = FetchOptions(read_timeout=60, retries=0, chunk_size=int(sys.argv[2]))
path = fetch.download(resolve_checkpoint("resnet50_fc512", "market1501"), progress=False, options=options)
print(json.dumps({"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))
"""


def spawn(tmp_path: Path, server_url: str, index: int) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / f"ready-{index}"
    env = {**os.environ, "MODELZOO_MIRROR": server_url + "/zoo", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ready), str(CHUNK)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return child, ready


def wait_for(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_eight_processes_download_once_and_all_get_the_same_verified_file(loopback_server, tmp_path):
    state = ckptgen.toy_state_dict(seed=8)
    data = ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state).read_bytes()
    gate = threading.Event()  # holds the one transfer until every process is asking
    loopback_server.serve(ZIP, data, gate=gate)
    children = [spawn(tmp_path, loopback_server.url, i) for i in range(8)]
    try:
        wait_for(lambda: all(ready.exists() for _, ready in children), "8 processes to start")
        wait_for(lambda: loopback_server.requests_for(ZIP), "the first request")
        time.sleep(0.5)  # let the others reach the lock (a second request, if any, would show below)
    finally:
        gate.set()
    outputs = []
    for child, _ in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert len(loopback_server.requests_for(ZIP)) == 1 and loopback_server.full_transfers(ZIP) == 1
    assert len({o["path"] for o in outputs}) == 1 and len({o["sha256"] for o in outputs}) == 1
    path = Path(outputs[0]["path"])
    assert sha256_file(path) == outputs[0]["sha256"] == store_at(path.parent).read_record().sha256
    assert read_state_dict(path).keys() == state.keys()


def test_a_process_killed_mid_download_leaves_a_partial_that_the_next_run_resumes(
    loopback_server, tmp_path, monkeypatch
):
    state = ckptgen.toy_state_dict(seed=9, fc_width=1024)  # about 256 KiB
    data = ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state).read_bytes()
    loopback_server.serve(ZIP, data, chunk=CHUNK)
    sent_before_stall = 5 * CHUNK
    loopback_server.fail(ZIP, stall_body(sent_before_stall, 30.0))  # the first transfer hangs mid-body
    folder = store_of(zip_checkpoint()).folder
    child, _ = spawn(tmp_path, loopback_server.url, 0)

    def partial_size() -> int:
        assert fetch.cached_path(zip_checkpoint()) is None  # nothing at the final path meanwhile
        assert not any(p.name.endswith(".pth.tar") for p in folder.glob("*")) if folder.exists() else True
        return sum(p.stat().st_size for p in folder.glob("*.incomplete")) if folder.exists() else 0

    try:
        wait_for(lambda: partial_size() == sent_before_stall, "the partial download")
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    (partial,) = folder.glob("*.incomplete")
    assert partial.read_bytes() == data[:sent_before_stall]
    assert store_at(folder).read_record() is None

    monkeypatch.setenv("MODELZOO_MIRROR", loopback_server.url + "/zoo")
    path = fetch.download(zip_checkpoint(), progress=False, options=FAST)
    resumed = loopback_server.requests_for(ZIP)[-1]
    assert resumed.range == f"bytes={sent_before_stall}-" and resumed.status == 206
    assert resumed.body_bytes == len(data) - sent_before_stall
    assert read_state_dict(path).keys() == state.keys()
    assert not list(folder.glob("*.incomplete"))
