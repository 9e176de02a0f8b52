"""Loading side by side: torchreid 0.2.5 against modelzoo, in one run (issue #6, target 4).

Three measurements, each printed as a markdown table:

1. **A cached ResNet-50 checkpoint.**  torchreid's ``load_pretrained_weights``
   reads the original ``.pth.tar``: the dict torchreid's engine saves, with the
   state dict, the Adam state (``exp_avg`` and ``exp_avg_sq`` of every
   parameter), the scheduler, the epoch and ``rank1`` as a NumPy scalar (about
   300 MB).  modelzoo reads the safetensors copy it keeps beside the cached
   file (100 MB of weights, no pickle).  Both end with the weights in a model,
   timed two ways: into an already built model (build excluded from both;
   modelzoo's is ``modelzoo.load_weights``, which reads the file's bytes
   straight into the parameters), and build included (torchreid builds its own ResNet-50 then loads; modelzoo's is
   a warm ``modelzoo.get``).
   Under torch >= 2.6, ``torch.load`` defaults to ``weights_only=True`` and
   refuses that dict (the NumPy scalar), so for the *reference only* the
   benchmark makes ``torch.load`` default to ``weights_only=False`` while
   torchreid's function runs; modelzoo itself never unpickles anything but
   tensors and the NumPy scalar.
2. **``get()`` on a warm cache against ``build()`` alone**, for ResNet-50,
   OSNet-x1.0 and fast-reid's BoT-R50 and MGN (whose 8 names of one GeM the
   safetensors copy stores untied): what fetching, reading and loading add to
   building the model.  Each warm ``get()`` is checked to compute what a
   built model holding the same weights computes.
3. **``import modelzoo`` against ``import torch``**, each in fresh
   interpreters (the time of the import statement itself), and which heavy
   packages ``import modelzoo``, ``modelzoo.info`` and ``modelzoo.list_models``
   pull in (none should).

Every timing is the median of ``--repeats`` runs, the compared methods
interleaved so that load from other processes hits both alike; the load
average is printed with the tables.  torchreid is a reference oracle (the
``test`` extra), loaded file by file from its installed sources.

Usage::

    python -m benchmarks.bench_load [--repeats 9] [--threads 1] [--get-only]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

HEAVY_MODULES = ("torch", "torchvision", "numpy", "requests", "huggingface_hub", "safetensors", "PIL", "tqdm")
#: The models of the get() against build() table (their Market-1501 checkpoints): torchreid's, then fast-reid's.
GET_MODELS = ("resnet50", "osnet_x1_0", "bot_r50", "mgn_r50_ibn")


# --------------------------------------------------------------------------
# timing


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def interleaved(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each method, run in turn ``repeats`` times (results dropped, memory collected)."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            gc.collect()
            start = time.perf_counter()
            result = method()
            times[name].append(time.perf_counter() - start)
            del result
    return times


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


# --------------------------------------------------------------------------
# the reference: torchreid 0.2.5's own files


def torchreid_load_pretrained_weights() -> Callable:
    """``torchreid.reid.utils.torchtools.load_pretrained_weights``, loaded without torchreid's package.

    ``torchtools`` imports ``torchreid.reid.utils.tools`` (for a helper that
    ``load_pretrained_weights`` does not use); stand-in packages satisfy that
    import while the file loads and are removed afterwards.
    """
    from tests import oracle

    stand_ins = {}
    for name in ("torchreid", "torchreid.reid", "torchreid.reid.utils", "torchreid.reid.utils.tools"):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = []  # a package, so that the submodules import
            module.mkdir_if_missing = os.makedirs  # what torchtools takes from utils.tools
            stand_ins[name] = module
    if "torchreid" in stand_ins:  # the oracle finds torchreid's files through its spec
        stand_ins["torchreid"].__spec__ = importlib.util.find_spec("torchreid")
    sys.modules.update(stand_ins)
    try:
        return oracle.load("utils/torchtools.py").load_pretrained_weights
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)


def torchreid_resnet50() -> torch.nn.Module:
    from tests import oracle

    return oracle.load("models/resnet.py").resnet50(num_classes=751, loss="softmax", pretrained=False)


@contextlib.contextmanager
def reference_torch_load() -> Iterator[None]:
    """``torch.load`` as torchreid was written for (``weights_only=False``), printing silenced.

    For the reference only: torchreid's ``load_checkpoint`` calls
    ``torch.load(path, map_location=...)``, which torch >= 2.6 refuses on a
    dict holding a NumPy scalar.
    """
    original = torch.load

    def unrestricted(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = unrestricted
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        torch.load = original


# --------------------------------------------------------------------------
# the checkpoints


def training_checkpoint(model: torch.nn.Module, seed: int = 0) -> dict:
    """What torchreid's engine saves: state dict, Adam and scheduler state, epoch, rank1 (NumPy)."""
    from modelzoo.testing.weights import deterministic_state_dict

    state = deterministic_state_dict(model, seed=seed)
    model.load_state_dict(state)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        parameter.grad = torch.randn(parameter.shape, generator=generator) * 1e-3
    optimizer.step()  # creates exp_avg and exp_avg_sq for every parameter
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[20, 40], gamma=0.1)
    return {
        "state_dict": state,
        "epoch": 60,
        "rank1": np.float64(0.871),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }


def publish(name: str, folder: Path, pth_tar: Path | None = None) -> None:
    """Put ``name.market1501`` in the mirror ``folder`` in its manifest format.

    With ``pth_tar``, a full training checkpoint is written there too and the
    mirror's file holds exactly those bytes (inside a QMUL zip for ResNet-50).
    """
    import modelzoo
    from modelzoo.testing.checkpoints import qmul_stem, write_for_checkpoint
    from modelzoo import manifest
    from modelzoo.testing.weights import deterministic_state_dict

    checkpoint = manifest.resolve_checkpoint(name, "market1501")
    model = modelzoo.build(name, num_classes=checkpoint.num_classes)
    if pth_tar is None:  # fast-reid's files have their own layout, not a vintage
        vintage = None if checkpoint.layout == "fastreid" else "bare"
        write_for_checkpoint(checkpoint, folder, deterministic_state_dict(model), vintage=vintage)
        return
    torch.save(training_checkpoint(model), pth_tar)
    if checkpoint.format != "zip":
        raise ValueError(f"{name}: expected a QMUL zip entry, got {checkpoint.format}")
    stem = qmul_stem(checkpoint.filename)
    with zipfile.ZipFile(folder / checkpoint.filename, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.write(pth_tar, f"{stem}/{stem}.pth.tar")


# --------------------------------------------------------------------------
# 1. ResNet-50 checkpoint


def bench_checkpoint(pth_tar: Path, repeats: int) -> list[str]:
    import modelzoo
    from modelzoo import fetch, manifest
    from modelzoo.fetch.store import CheckpointStore

    load_pretrained_weights = torchreid_load_pretrained_weights()
    checkpoint = manifest.resolve_checkpoint("resnet50", "market1501")
    theirs_built, ours_built = torchreid_resnet50(), modelzoo.build("resnet50", num_classes=751)

    def theirs_into_built() -> None:
        with reference_torch_load():
            load_pretrained_weights(theirs_built, str(pth_tar))

    def ours_into_built() -> None:
        modelzoo.load_weights(ours_built, "resnet50", "market1501", progress=False)

    def theirs_with_build() -> torch.nn.Module:
        model = torchreid_resnet50()
        with reference_torch_load():
            load_pretrained_weights(model, str(pth_tar))
        return model

    def ours_with_build() -> torch.nn.Module:
        return modelzoo.get("resnet50", "market1501", device="cpu", progress=False)

    ours_with_build()  # cold: extracts the zip, reads the .pth.tar once, writes the safetensors copy
    theirs_into_built(), ours_into_built()  # warm the page cache
    _check_same_weights(theirs_built, ours_built)
    times = interleaved({"theirs": theirs_into_built, "ours": ours_into_built,
                         "theirs+build": theirs_with_build, "ours+build": ours_with_build}, repeats)
    copy = CheckpointStore.copy_path(fetch.download(checkpoint, progress=False))
    size_mb = {"pth": pth_tar.stat().st_size / 1e6, "st": copy.stat().st_size / 1e6}
    rows = [
        "| ResNet-50 weights, warm page cache | torchreid 0.2.5 `load_pretrained_weights` (ms) "
        "| modelzoo (ms) | speed-up |",
        "|---|---:|---:|---:|",
        _ratio_row(f"into a built model (build excluded); torchreid reads the .pth.tar ({size_mb['pth']:.0f} MB, "
                   f"with Adam state), modelzoo its safetensors copy ({size_mb['st']:.0f} MB)",
                   times["theirs"], times["ours"]),
        _ratio_row("build included: torchreid's `resnet50()` + `load_pretrained_weights` vs warm `modelzoo.get()`",
                   times["theirs+build"], times["ours+build"]),
    ]
    return rows


def _check_same_weights(theirs: torch.nn.Module, ours: torch.nn.Module) -> None:
    mine = ours.state_dict()
    for key, value in theirs.state_dict().items():
        if not torch.equal(value, mine[key]):
            raise RuntimeError(f"torchreid and modelzoo loaded different values for {key}")


def _ratio_row(label: str, theirs: list[float], ours: list[float]) -> str:
    return f"| {label} | {median_ms(theirs):.0f} | {median_ms(ours):.0f} | {median_ms(theirs) / median_ms(ours):.1f}x |"


# --------------------------------------------------------------------------
# 2. get() against build()


def bench_get(names: list[str], repeats: int) -> list[str]:
    import modelzoo
    from modelzoo import manifest

    rows = ["| model | `build()` (ms) | warm `get()` (ms) | `get()` - `build()` (ms) |", "|---|---:|---:|---:|"]
    for name in names:
        classes = manifest.resolve_checkpoint(name, "market1501").num_classes
        modelzoo.get(name, "market1501", device="cpu", progress=False)  # cold: makes the safetensors copy
        times = interleaved({
            "build": lambda: modelzoo.build(name, num_classes=classes),
            "get": lambda: modelzoo.get(name, "market1501", device="cpu", progress=False),
        }, repeats)
        build_ms, get_ms = median_ms(times["build"]), median_ms(times["get"])
        rows.append(f"| {name} | {build_ms:.0f} | {get_ms:.0f} | {get_ms - build_ms:+.0f} |")
        _check_warm_get_output(name)
    return rows


def _check_warm_get_output(name: str) -> None:
    """A warm ``get()`` computes what a built model given the same weights computes (MGN: one shared GeM)."""
    import modelzoo
    from modelzoo.testing.weights import deterministic_state_dict

    warm = modelzoo.get(name, "market1501", device="cpu", progress=False)
    built = modelzoo.build(f"{name}.market1501")
    built.load_state_dict(deterministic_state_dict(built))
    height, width = warm.modelzoo_info.preprocessing.input_size
    images = torch.randn(2, 3, height // 2, width // 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        if not torch.equal(warm(images), built.eval()(images)):
            raise RuntimeError(f"{name}: a warm get() computes another function than the weights it was given")


# --------------------------------------------------------------------------
# 3. import time


_IMPORT_TIMER = "import time, sys; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
_WHAT_IT_IMPORTS = (
    "import json, sys, modelzoo; modelzoo.info('resnet50'); modelzoo.list_models(); "
    "print(json.dumps(sorted(sys.modules)))"
)


def import_seconds(module: str) -> float:
    """The time of ``import module`` in a fresh interpreter (interpreter start-up excluded)."""
    result = subprocess.run([sys.executable, "-c", _IMPORT_TIMER.format(module=module)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def bench_import(repeats: int) -> list[str]:
    times: dict[str, list[float]] = {"torch": [], "modelzoo": []}
    for _ in range(repeats):
        for module in times:
            times[module].append(import_seconds(module))
    result = subprocess.run([sys.executable, "-c", _WHAT_IT_IMPORTS], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    heavy = sorted(loaded & set(HEAVY_MODULES)) or ["none"]
    torch_ms, modelzoo_ms = median_ms(times["torch"]), median_ms(times["modelzoo"])
    return [
        "| fresh interpreter | `import torch` (ms) | `import modelzoo` (ms) | ratio |",
        "|---|---:|---:|---:|",
        f"| time of the import statement | {torch_ms:.0f} | {modelzoo_ms:.1f} | {modelzoo_ms / torch_ms:.3f} |",
        "",
        f"Heavy packages imported by `import modelzoo; modelzoo.info(...); modelzoo.list_models()`: "
        f"{', '.join(heavy)} (checked: {', '.join(HEAVY_MODULES)}).",
    ]


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per method (median kept)")
    parser.add_argument("--import-repeats", type=int, default=7, help="fresh interpreters per import")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the loading measurements "
                        "(a busy machine makes multi-threaded tensor copies, torchreid's included, much slower)")
    parser.add_argument("--get-only", action="store_true", help="only the get() against build() table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench_load-"))
    mirror = work / "mirror"
    mirror.mkdir()
    os.environ["MODELZOO_HOME"] = str(work / "home")
    os.environ["MODELZOO_MIRROR"] = str(mirror)
    os.environ.pop("MODELZOO_OFFLINE", None)

    start_load = load_average()
    print("writing the checkpoints ...", file=sys.stderr)
    pth_tar = work / "resnet50_market_xent.pth.tar"
    publish("resnet50", mirror, None if args.get_only else pth_tar)
    for name in GET_MODELS[1:]:
        publish(name, mirror)

    tables = []
    if not args.get_only:
        print("1/3 ResNet-50 checkpoint ...", file=sys.stderr)
        tables.append(bench_checkpoint(pth_tar, args.repeats))
    print("2/3 get() against build() ...", file=sys.stderr)
    tables.append(bench_get(list(GET_MODELS), args.repeats))
    if not args.get_only:
        print("3/3 import time ...", file=sys.stderr)
        tables.append(bench_import(args.import_repeats))

    print(f"\n### Loading (torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
          f"load average {start_load} at start, {load_average()} at end; medians of {args.repeats} runs)\n")
    print("\n\n".join("\n".join(rows) for rows in tables))


if __name__ == "__main__":
    main()
