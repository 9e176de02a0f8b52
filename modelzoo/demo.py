"""``modelzoo demo``: the whole pipeline, offline, on data made on the spot.

1. Write a small synthetic dataset in Market-1501's exact layout.
2. Write a checkpoint for the chosen architecture in its zoo's format and
   layout (torchreid's dict, or fast-reid's ``{"model": ...}`` with its era's
   key names and pixel buffers; randomly initialised weights), under its
   original file name, in a mirror folder, and serve that folder from a
   loopback HTTP server.
3. With a fresh cache in the work folder and the server as the only mirror
   (passed as arguments: the environment is left alone):
   ``modelzoo.get`` -> ``modelzoo.evaluate`` -> a verify-style report.

These are synthetic images and untrained weights: the numbers show that the
machinery works here, and say nothing about the published benchmark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Callable

logger = logging.getLogger(__name__)

DATASET = "market1501"
NOTE = (
    "SYNTHETIC DATA AND UNTRAINED WEIGHTS: this demo checks that download -> load -> evaluate -> report "
    "works on this machine. Its numbers are not the published benchmark and are not expected to match it."
)


def run_demo(workdir: Path | None = None, model: str = "osnet_x0_25", say: Callable[[str], None] = logger.info) -> int:
    """Run the demo; returns the exit code.

    ``say`` receives the lines meant for a person: the ``modelzoo demo``
    command prints them; by default they go to this module's logger.
    """
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelzoo-demo-")))
        return _run(Path(workdir), model, say)


def _run(workdir: Path, model_name: str, say: Callable[[str], None]) -> int:
    from modelzoo import manifest
    from modelzoo.evaluation.pipeline import evaluate
    from modelzoo.evaluation.verify import markdown_table, row_for, write_report
    from modelzoo.models import get, model_info
    from modelzoo.testing import synthetic
    from modelzoo.testing.checkpoints import write_untrained_checkpoint
    from modelzoo.testing.server import serve_folder

    checkpoint = manifest.resolve_checkpoint(model_name, DATASET)
    say(f"reid-modelzoo demo in {workdir}\n{NOTE}\n")
    data_root = synthetic.write_dataset(DATASET, workdir / "data", overwrite=True)
    say(f"1. wrote a synthetic Market-1501 layout under {data_root}")
    mirror = workdir / "mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    served = write_untrained_checkpoint(checkpoint, mirror)
    layout = "".join(f", {key} {value}" for key, value in checkpoint.layout_options.items())
    say(f"2. wrote an untrained {model_name} checkpoint in its zoo's format ({checkpoint.layout} layout{layout}): "
        f"{served.name}")
    cache = workdir / "cache"
    with serve_folder(mirror) as url:
        say(f"3. serving it at {url} (the only mirror), fresh cache in {cache}")
        model = get(checkpoint.name, progress=False, cache_dir=cache, mirrors=[url], offline=False)
        info = model_info(model)
        report = info.load_report if info is not None else None
        say(f"4. modelzoo.get: {report.summary() if report else 'no weights'}, on {next(model.parameters()).device}")
    result = evaluate(model, DATASET, data_root, progress=False)
    say(f"5. modelzoo.evaluate:\n{result.summary()}\n")
    published = checkpoint.same_domain
    assert published is not None  # the demo's checkpoints are same-domain ones
    row = dataclasses.replace(row_for(checkpoint, published, tolerance=0.5), measured=result)
    say(markdown_table([row]))
    for path in write_report([row], workdir / "report", note=NOTE):
        say(f"wrote {path}")
    say("\nThe demo worked: the comparison above is expected to fail on synthetic data. "
        "To verify the real zoo: modelzoo verify --data-root /path/to/reid-data")
    return 0
