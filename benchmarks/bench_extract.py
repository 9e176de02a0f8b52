"""Feature extraction throughput side by side: torchreid's FeatureExtractor vs ``extract_features``.

In one run, on the same JPEG files and the same network (fixed random
weights from ``modelzoo.build`` after ``torch.manual_seed``), on the CPU:

* **torchreid** -- the real ``torchreid.utils.FeatureExtractor`` class of
  torchreid 0.2.5, loaded from its file with the few torchreid modules it
  imports stubbed (``build_model`` hands it our network, so both run the same
  weights; ``import torchreid`` itself needs OpenCV, SciPy, ...).  It is fed
  the paths in chunks of 64, its best use: PIL decode, Resize, ToTensor,
  Normalize one image after another, then one ``no_grad`` forward pass.
* **ours fp32** -- ``extract_features`` with its default settings.
* **ours bf16** -- ``precision="bf16"``.  On a CPU without native bf16
  (``avx512_bf16``/AMX) it is emulated and very slow, so it then runs on the
  first ``--bf16-images`` images only (the table says how many).
* with ``--crops``: the tracker's case, images already in memory as uint8
  RGB arrays (decoded before timing): torchreid's FeatureExtractor fed the
  arrays in chunks of 64, against ``modelzoo.FeatureExtractor``;
* with ``--ablation``: ours with one optimisation turned off at a time
  (BatchNorm folding, channels-last, decoding workers), to show where the
  time goes.

Methods run interleaved, ``--rounds`` times each, so that load from other
processes hits them alike; the table shows the best and the median round,
and the speed-up both as best against best and as the median over rounds of
the rate divided by torchreid's rate in the same round (robust on a shared
machine).
Features are compared with torchreid's (max abs difference, min cosine
similarity per image) and bf16 with our fp32.

Usage::

    python -m benchmarks.bench_extract                      # resnet50 and osnet_x1_0, 512 images
    python -m benchmarks.bench_extract --models osnet_x1_0 --images 256 --rounds 3 --ablation
    python -m benchmarks.bench_extract --crops --images 256 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

import modelzoo  # noqa: E402
from modelzoo.devices import cpu_has_native_bf16  # noqa: E402
from modelzoo.inference.features import extract_features  # noqa: E402

TORCHREID_CHUNK = 64
CROP_SIZES = ((128, 64), (256, 128), (160, 64), (192, 96))  # (height, width) of person crops


@dataclass
class Method:
    """One way to extract features, and what it measured."""

    name: str
    run: Callable[[list[str]], torch.Tensor]
    images: int  # how many of the images it runs on
    seconds: list[float] = field(default_factory=list)
    features: torch.Tensor | None = None

    def rates(self) -> list[float]:
        return [self.images / s for s in self.seconds]


def write_images(folder: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` person-crop-like JPEGs: smooth blobs of colour plus noise, a few crop sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        height, width = CROP_SIZES[index % len(CROP_SIZES)]
        coarse = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), dtype=np.int16)
        pixels = np.clip(smooth + rng.integers(-24, 25, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"{index:05d}_c{index % 6 + 1}.jpg"
        Image.fromarray(pixels).save(path, "JPEG", quality=90)
        paths.append(str(path))
    return paths


def torchreid_feature_extractor_class() -> type:
    """torchreid 0.2.5's ``FeatureExtractor`` class, loaded from its file with its imports stubbed.

    The stubbed ``build_model`` returns the network in ``_STUB_MODEL``, so the
    class runs exactly the weights we give it; everything else (transforms,
    batching, ``no_grad``) is torchreid's own code.
    """
    spec = importlib.util.find_spec("torchreid")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("torchreid 0.2.5 (the reference) is not installed: pip install -e '.[test]'")
    source = Path(list(spec.submodule_search_locations)[0]) / "reid" / "utils" / "feature_extractor.py"
    stubs = {
        "torchreid": types.ModuleType("torchreid"),
        "torchreid.reid": types.ModuleType("torchreid.reid"),
        "torchreid.reid.utils": types.ModuleType("torchreid.reid.utils"),
        "torchreid.reid.models": types.ModuleType("torchreid.reid.models"),
    }
    stubs["torchreid.reid.utils"].check_isfile = os.path.isfile
    stubs["torchreid.reid.utils"].load_pretrained_weights = lambda model, path: None
    stubs["torchreid.reid.utils"].compute_model_complexity = lambda model, shape: (0, 0)
    stubs["torchreid.reid.models"].build_model = lambda *args, **kwargs: copy.deepcopy(_STUB_MODEL[0])
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        module_spec = importlib.util.spec_from_file_location("_torchreid_feature_extractor", source)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module.FeatureExtractor


_STUB_MODEL: list[torch.nn.Module] = []


def torchreid_method(name: str, model: torch.nn.Module, images: int) -> Method:
    """torchreid's FeatureExtractor on ``model``'s weights, fed chunks of 64 paths."""
    _STUB_MODEL[:] = [model]
    extractor = torchreid_feature_extractor_class()(model_name=name, device="cpu", verbose=False)

    def run(paths: list[str]) -> torch.Tensor:
        chunks = [extractor(paths[i : i + TORCHREID_CHUNK]) for i in range(0, len(paths), TORCHREID_CHUNK)]
        return torch.cat(chunks)

    return Method("torchreid FeatureExtractor (chunks of 64)", run, images)


def decoded(paths: list[str]) -> dict[str, np.ndarray]:
    """Every image as a uint8 RGB array (what a tracker holds after cropping a frame)."""
    from PIL import Image

    arrays = {}
    for path in paths:
        with Image.open(path) as image:
            arrays[path] = np.asarray(image.convert("RGB"))
    return arrays


def torchreid_crops_method(name: str, model: torch.nn.Module, arrays: dict[str, np.ndarray], images: int) -> Method:
    """torchreid's FeatureExtractor fed in-memory RGB arrays, in chunks of 64."""
    _STUB_MODEL[:] = [model]
    extractor = torchreid_feature_extractor_class()(model_name=name, device="cpu", verbose=False)

    def run(paths: list[str]) -> torch.Tensor:
        crops = [arrays[path] for path in paths]
        return torch.cat([extractor(crops[i : i + TORCHREID_CHUNK]) for i in range(0, len(crops), TORCHREID_CHUNK)])

    return Method("torchreid FeatureExtractor, in-memory arrays (chunks of 64)", run, images)


def ours_crops_method(model: torch.nn.Module, arrays: dict[str, np.ndarray], images: int) -> Method:
    """``modelzoo.FeatureExtractor`` on the same in-memory RGB arrays."""
    extractor = modelzoo.FeatureExtractor(model, device="cpu")

    def run(paths: list[str]) -> torch.Tensor:
        return extractor([arrays[path] for path in paths], color="rgb")

    return Method("ours FeatureExtractor, in-memory arrays", run, images)


def ours_method(label: str, model: torch.nn.Module, transform, images: int, **settings) -> Method:
    """``extract_features`` with ``settings``."""

    def run(paths: list[str]) -> torch.Tensor:
        return extract_features(model, paths, transform, device="cpu", progress=False, **settings)

    return Method(label, run, images)


def methods_for(name: str, model: torch.nn.Module, args: argparse.Namespace, paths: list[str]) -> list[Method]:
    count = len(paths)
    if args.crops:  # its own table: the reference is torchreid on the same arrays
        arrays = decoded(paths)
        return [torchreid_crops_method(name, model, arrays, count), ours_crops_method(model, arrays, count)]
    transform = modelzoo.transforms(name)
    bf16_images = count if cpu_has_native_bf16() else min(count, args.bf16_images)
    methods = [
        torchreid_method(name, model, count),
        ours_method("ours fp32 (defaults)", model, transform, count),
    ]
    if args.ablation:
        methods += [
            ours_method("ours fp32, no BN folding", model, transform, count, fold_bn=False),
            ours_method("ours fp32, contiguous", model, transform, count, channels_last=False),
            ours_method("ours fp32, 1 worker", model, transform, count, num_workers=1),
            ours_method("ours fp32, 2 workers", model, transform, count, num_workers=2),
            ours_method(
                "ours fp32, old defaults (unfolded, contiguous, 2 workers)",
                model, transform, count, fold_bn=False, channels_last=False, num_workers=2,
            ),
        ]
    if bf16_images:
        methods.append(ours_method("ours bf16", model, transform, bf16_images, precision="bf16"))
    return methods


def measure(methods: list[Method], paths: list[str], rounds: int) -> None:
    """Run every method ``rounds`` times, interleaved; keep the first round's features.

    An untimed warm-up batch first: oneDNN compiles its kernels on the first
    call with each shape, which should not count against whichever runs first.
    """
    for method in methods:
        method.run(paths[: min(TORCHREID_CHUNK, method.images)])
    for _ in range(rounds):
        for method in methods:
            subset = paths[: method.images]
            started = time.perf_counter()
            features = method.run(subset)
            method.seconds.append(time.perf_counter() - started)
            if method.features is None:
                method.features = features.float()
            print(f"  {method.name}: {method.rates()[-1]:.1f} images/s", file=sys.stderr, flush=True)


def compare(features: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """Max abs difference and min per-row cosine similarity against the reference's first rows."""
    reference = reference[: len(features)]
    max_abs = (features - reference).abs().max().item()
    cosine = torch.nn.functional.cosine_similarity(features.double(), reference.double(), dim=1).min().item()
    return max_abs, cosine


def table(name: str, methods: list[Method]) -> str:
    """A markdown table; the paired speed-up divides each round's rate by torchreid's in the same round."""
    reference, ours_fp32 = methods[0], methods[1]
    scale = reference.features.abs().max().item()
    lines = [
        f"**{name}** (largest feature value {scale:.3g})",
        "",
        "| method | images | images/s best | images/s median | x torchreid, best vs best "
        "| x torchreid, median of paired rounds | max abs diff vs torchreid | min cosine vs torchreid "
        "| min cosine vs ours fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in methods:
        rates = method.rates()
        paired = statistics.median(rate / base for rate, base in zip(rates, reference.rates()))
        max_abs, cosine = compare(method.features, reference.features)
        _, cosine_fp32 = compare(method.features, ours_fp32.features)
        lines.append(
            f"| {method.name} | {method.images} | {max(rates):.1f} | {statistics.median(rates):.1f} "
            f"| {max(rates) / max(reference.rates()):.2f} | {paired:.2f} "
            f"| {max_abs:.2e} | {cosine:.6f} | {cosine_fp32:.6f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"native bf16: {'yes' if cpu_has_native_bf16() else 'no'}; load average {load}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "osnet_x1_0"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--bf16-images", type=int, default=32,
        help="images for bf16 where the CPU has no native bf16 (emulated bf16 is very slow); 0 skips it",
    )
    parser.add_argument("--ablation", action="store_true", help="also time ours with one optimisation off")
    parser.add_argument("--crops", action="store_true",
                        help="instead: in-memory RGB arrays, torchreid's FeatureExtractor vs modelzoo.FeatureExtractor")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(f"machine at start: {machine()}", file=sys.stderr)
    outputs = []
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as folder:
        paths = write_images(Path(folder), args.images)
        for name in args.models:
            torch.manual_seed(0)
            model = modelzoo.build(name, num_classes=751).eval()  # with its eval transform
            methods = methods_for(name, model, args, paths)
            print(f"{name}:", file=sys.stderr)
            measure(methods, paths, args.rounds)
            outputs.append(table(name, methods))
    print(f"{args.images} JPEGs ({', '.join(f'{h}x{w}' for h, w in CROP_SIZES)}), input 256x128, "
          f"{args.rounds} interleaved rounds")
    print(f"machine at end: {machine()}\n")
    print("\n\n".join(outputs))


if __name__ == "__main__":
    main()
