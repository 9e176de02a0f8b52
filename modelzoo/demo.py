"""``modelzoo demo``: the whole pipeline, offline, on data made on the spot.

1. Write a small synthetic dataset in Market-1501's exact layout.
2. Write a checkpoint for the chosen architecture in torchreid's format
   (randomly initialised weights), under its original file name, in a mirror
   folder, and serve that folder from a loopback HTTP server.
3. With a fresh cache and ``MODELZOO_MIRROR`` pointing at the server:
   ``modelzoo.get`` -> ``modelzoo.evaluate`` -> a verify-style report.

These are synthetic images and untrained weights: the numbers show that the
machinery works here, and say nothing about the published benchmark.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)

DATASET = "market1501"
NOTE = (
    "SYNTHETIC DATA AND UNTRAINED WEIGHTS: this demo checks that download -> load -> evaluate -> report "
    "works on this machine. Its numbers are not the published benchmark and are not expected to match it."
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002  (http.server's name)
        logger.debug("demo server: " + format, *args)


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_untrained_checkpoint(model_name: str, directory: Path) -> Path:
    """A torchreid-format checkpoint of ``model_name`` (random init) named as the zoo names it."""
    import torch

    from modelzoo import hub, manifest

    checkpoint = manifest.resolve_checkpoint(model_name, DATASET)
    if checkpoint.format != "checkpoint":
        raise ValueError(f"the demo serves bare checkpoints; pick a model such as osnet_x0_25, not {model_name}")
    torch.manual_seed(0)
    model = hub.build(checkpoint.model, num_classes=checkpoint.num_classes)
    path = directory / checkpoint.filename
    torch.save({"state_dict": model.state_dict(), "epoch": 0, "rank1": 0.0}, path)
    return path


def run_demo(workdir: Path | None = None, model: str = "osnet_x0_25", say=logger.info) -> int:
    """Run the demo; returns the exit code.

    ``say`` receives the lines meant for a person: the ``modelzoo demo``
    command prints them; by default they go to this module's logger.
    """
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelzoo-demo-")))
        workdir = Path(workdir)
        return _run(workdir, model, say)


def _run(workdir: Path, model_name: str, say) -> int:
    from modelzoo import hub
    from modelzoo.datasets import synthetic
    from modelzoo.evaluation.pipeline import evaluate
    from modelzoo.evaluation.verify import VerificationRow, markdown_table, write_report
    from modelzoo.manifest import resolve_checkpoint

    say(f"reid-modelzoo demo in {workdir}\n{NOTE}\n")
    data_root = synthetic.write_dataset(DATASET, workdir / "data", overwrite=True)
    say(f"1. wrote a synthetic Market-1501 layout under {data_root}")
    mirror = workdir / "mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    served = write_untrained_checkpoint(model_name, mirror)
    say(f"2. wrote an untrained {model_name} checkpoint in torchreid's format: {served.name}")
    with serve_directory(mirror) as url, environment(
        MODELZOO_HOME=str(workdir / "cache"), MODELZOO_MIRROR=url, MODELZOO_OFFLINE="0", HF_HUB_OFFLINE="0"
    ):
        say(f"3. serving it at {url} (MODELZOO_MIRROR), fresh cache in {workdir / 'cache'}")
        model = hub.get(model_name, DATASET, progress=False)
        say(f"4. modelzoo.get: {model.load_report.summary()}, on {next(model.parameters()).device}")
        result = evaluate(model, DATASET, data_root, progress=False)
    say(f"5. modelzoo.evaluate:\n{result.summary()}\n")
    published = resolve_checkpoint(model_name, DATASET).same_domain
    row = VerificationRow(
        checkpoint=f"{model_name}.{DATASET}", dataset=DATASET, published_rank1=published.rank1,
        published_mAP=published.mAP, tolerance=0.5, measured=result,
    )
    say(markdown_table([row]))
    for path in write_report([row], workdir / "report", note=NOTE):
        say(f"wrote {path}")
    say("\nThe demo worked: the comparison above is expected to fail on synthetic data. "
        "To verify the real zoo: modelzoo verify --data-root /path/to/reid-data")
    return 0
