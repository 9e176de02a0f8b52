"""Runtimes side by side (issue #13): torchreid, Roboflow ``reid`` and ours on torch / ONNX Runtime / OpenVINO.

In one process run, on the CPU, with the same weights everywhere, images/s of:

* **torchreid** -- ``torchreid.reid.utils.FeatureExtractor`` of torchreid
  0.2.5 (``import torchreid`` with only ``torch.utils.tensorboard`` stubbed:
  it is imported by its training engine and not installed here).  It builds
  its own network (``osnet_*``, ``resnet50``) and loads a plain state-dict
  file written from our loaded model (the load is checked tensor by tensor).
  torchreid has no BoT-R50, so for ``bot_r50`` its ``build_model`` is made to
  hand over our network (its bilinear resize is kept: fast-reid resizes
  bicubic, which the cosine column shows).
* **reid** -- Roboflow's ``reid`` 0.1 (``ReIDModel``): ``from_pretrained`` of
  the same local state-dict file with ``architecture=`` its own ``osnet_*``
  or ``timm:resnet50`` (no network needed: it loads local files); it has no
  BoT-R50 either, so there ``ReIDModel`` wraps our network (its documented
  raw-``nn.Module`` form) with bicubic preprocessing.  If ``reid`` is not
  installed or cannot be built, its rows say why.
* **ours** -- ``modelzoo.FeatureExtractor(model, device="cpu", backend=...)``
  with ``torch``, ``onnxruntime`` and ``openvino`` at fp32, and ``torch`` /
  ``openvino`` at bf16 where the CPU has native bf16.  The first construction
  of a compiled backend (export, compile, parity check, kept in the cache) is
  timed apart as *setup*; a second construction (the cached artifact opened
  and re-checked, what each ``extract_features(..., backend="openvino")`` call
  pays) as *cached open*; throughput is timed on the constructed extractor
  after a warm-up call.

Weights: none exist offline, so each model's checkpoint is written untrained
in the zoo's real format into a local mirror folder
(``modelzoo.testing.checkpoints.write_untrained_checkpoint``) and loaded
through the real code path: ``MODELZOO_MIRROR=<mirror>``,
``MODELZOO_HOME=<fresh cache>``, ``modelzoo.get(name)``.

Inputs, each timed end to end (cropping and colour conversion included):

(a) **frame**: ``--crops`` (64) person-sized boxes (xyxy, whole pixels) in a
    synthetic 1080x1920 uint8 BGR frame: ours ``extractor(frame, boxes,
    color="bgr")``; torchreid the crops cut and turned RGB by the caller;
    reid ``extract_embeddings(sv.Detections(xyxy=boxes), frame)``.
(b) **files**: a folder of ``--files`` (256) JPEG crops: ours
    ``extract_features(model, paths, backend=<the extractor's runtime>,
    num_workers=...)``; torchreid the paths in chunks of 64; reid
    ``extract_embeddings_from_paths`` (same worker count as ours).

Methods run interleaved, ``--repeats`` rounds each; the table gives the best
and the median round, the speed-ups best against best, and the minimum
per-row cosine similarity of every method's features with ours torch fp32 on
the same crops.  The targets of issue #13 are checked and printed at the end.

``--accuracy`` also evaluates each model on a synthetic Market-1501
(``modelzoo.testing.synthetic``) with ``modelzoo.evaluate``: torch fp32,
OpenVINO fp32 and bf16, torch bf16.  The weights are untrained, so only the
differences between the rows mean something.

Usage::

    python -m benchmarks.bench_runtimes                     # 4 models, 3 rounds
    python -m benchmarks.bench_runtimes --quick             # osnet_x0_25, 1 round: a smoke test
    python -m benchmarks.bench_runtimes --models osnet_x1_0 --repeats 5 --json out.json --accuracy
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.metadata
import json
import os
import statistics
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.bench_extract import CROP_SIZES, write_images  # noqa: E402  (the same JPEG crops)
from modelzoo.devices import available_cpus, cpu_has_native_bf16, cpu_model  # noqa: E402

MODELS = ("osnet_x1_0", "osnet_x0_25", "resnet50", "bot_r50")
FRAME_SHAPE = (1080, 1920, 3)
CHUNK = 64  # images per call / forward pass, for every method
#: reid's own architecture for each of our models (others: our network wrapped in ``ReIDModel``).
REID_ARCHITECTURES = {"osnet_x1_0": "osnet_x1_0", "osnet_x0_25": "osnet_x0_25", "osnet_x0_5": "osnet_x0_5",
                      "osnet_x0_75": "osnet_x0_75", "resnet50": "timm:resnet50"}
INPUTS = ("frame", "files")
REFERENCE = "ours torch fp32"


# --------------------------------------------------------------------------
# Inputs


def make_frame(seed: int = 0, shape: tuple[int, int, int] = FRAME_SHAPE) -> np.ndarray:
    """A synthetic video frame: smooth colour blobs plus noise, uint8, BGR by convention."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width, _ = shape
    coarse = rng.integers(0, 256, (height // 24, width // 24, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16)
    return np.clip(smooth + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)


def make_boxes(count: int, frame_shape: tuple[int, ...] = FRAME_SHAPE, seed: int = 0) -> np.ndarray:
    """``count`` person-like xyxy boxes inside the frame: 64-480 px tall, width 0.3-0.5 of the height.

    Whole-pixel coordinates, so every method cuts exactly the same pixels
    (reid truncates to ints, ours rounds outwards: equal on whole numbers).
    """
    rng = np.random.default_rng(seed)
    height, width = frame_shape[:2]
    heights = rng.integers(64, 481, count)
    widths = np.maximum(16, np.round(heights * rng.uniform(0.3, 0.5, count))).astype(int)
    x1 = rng.integers(0, width - widths + 1)
    y1 = rng.integers(0, height - heights + 1)
    return np.stack([x1, y1, x1 + widths, y1 + heights], axis=1).astype(np.float32)


def cut_rgb(frame: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """The boxes' crops of a BGR frame as contiguous RGB arrays (what torchreid's extractor expects)."""
    crops = []
    for x1, y1, x2, y2 in boxes.astype(int):
        crops.append(np.ascontiguousarray(frame[y1:y2, x1:x2, ::-1]))
    return crops


# --------------------------------------------------------------------------
# Methods


@dataclass
class Method:
    """One way to extract features, and what it measured on each input."""

    name: str
    family: str  # "torchreid", "reid" or "ours"
    backend: str = "torch"
    precision: str = "fp32"
    run: dict[str, Callable[[], torch.Tensor]] = field(default_factory=dict)  # input -> features
    setup_s: float | None = None
    cached_open_s: float | None = None
    note: str = ""
    skipped: str = ""  # why it did not run
    seconds: dict[str, list[float]] = field(default_factory=dict)
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def rates(self, kind: str, images: int) -> list[float]:
        return [images / s for s in self.seconds.get(kind, [])]


def timed(make: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    made = make()
    return made, time.perf_counter() - started


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Libraries' chatter (prints, warnings) to stderr, so stdout stays the Markdown report."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def import_torchreid() -> types.ModuleType:
    """torchreid 0.2.5's ``reid.utils.feature_extractor`` module, with the real package imported.

    ``import torchreid`` imports its training engine, which imports
    ``torch.utils.tensorboard`` (tensorboard is not installed here): that one
    module is stubbed while importing; everything feature extraction uses is torchreid's.
    """
    if "torch.utils.tensorboard" not in sys.modules:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            stub = types.ModuleType("torch.utils.tensorboard")
            stub.SummaryWriter = object  # type: ignore[attr-defined]
            sys.modules["torch.utils.tensorboard"] = stub
    with quiet():
        import torchreid.reid.utils.feature_extractor as module
    return module


def torchreid_method(name: str, model: torch.nn.Module, weights: Path, frame: np.ndarray, boxes: np.ndarray,
                     paths: list[str]) -> Method:
    """torchreid's FeatureExtractor on our weights (its own network where it has the architecture)."""
    method = Method("torchreid FeatureExtractor", "torchreid")
    try:
        module = import_torchreid()
        from torchreid.reid import models as torchreid_models
    except Exception as exc:  # noqa: BLE001 - reported in the table
        method.skipped = f"torchreid not importable: {type(exc).__name__}: {exc}"
        return method
    factory = getattr(torchreid_models, "__model_factory", {})
    if name in factory:
        with quiet():
            extractor, method.setup_s = timed(lambda: module.FeatureExtractor(
                model_name=name, model_path=str(weights), device="cpu", verbose=False))
        ours, theirs = model.state_dict(), extractor.model.state_dict()
        differ = [key for key in theirs if not key.startswith("classifier")
                  and (key not in ours or not torch.equal(ours[key].cpu(), theirs[key]))]
        if differ:
            method.skipped = f"torchreid's {name} did not take our weights ({len(differ)} tensors differ: {differ[:3]})"
            return method
        method.note = f"torchreid's own {name}, our state dict loaded (checked equal)"
    else:
        original = module.build_model
        module.build_model = lambda *args, **kwargs: copy.deepcopy(model)  # type: ignore[attr-defined]
        try:
            with quiet():
                extractor, method.setup_s = timed(lambda: module.FeatureExtractor(
                    model_name=name, device="cpu", verbose=False))
        finally:
            module.build_model = original  # type: ignore[attr-defined]
        method.note = f"torchreid has no {name}: our network in its FeatureExtractor (its bilinear resize)"

    def on_frame() -> torch.Tensor:
        crops = cut_rgb(frame, boxes)
        return torch.cat([extractor(crops[i:i + CHUNK]) for i in range(0, len(crops), CHUNK)])

    def on_files() -> torch.Tensor:
        return torch.cat([extractor(paths[i:i + CHUNK]) for i in range(0, len(paths), CHUNK)])

    method.run = {"frame": on_frame, "files": on_files}
    return method


def reid_version() -> str | None:
    try:
        return importlib.metadata.version("reid")
    except importlib.metadata.PackageNotFoundError:
        return None


def reid_method(name: str, model: torch.nn.Module, weights: Path, frame: np.ndarray, boxes: np.ndarray,
                paths: list[str], workers: int) -> Method:
    """Roboflow reid's ``ReIDModel`` on our weights, loaded from the local file."""
    method = Method("reid ReIDModel", "reid")
    version = reid_version()
    if version is None:
        method.skipped = "not installed (pip install --no-deps 'reid==0.1.0rc1' and its dependencies)"
        return method
    try:
        with quiet():
            import reid
            import supervision as sv
    except Exception as exc:  # noqa: BLE001 - reported in the table
        method.skipped = f"reid {version} not importable: {type(exc).__name__}: {exc}"
        return method
    method.name = f"reid {version} ReIDModel"
    architecture = REID_ARCHITECTURES.get(name)
    try:
        if architecture is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with contextlib.redirect_stdout(sys.stderr):
                    encoder, method.setup_s = timed(lambda: reid.ReIDModel.from_pretrained(
                        str(weights), architecture=architecture, device="cpu"))
            if caught:
                method.skipped = f"reid's {architecture} did not take our weights: {caught[0].message}"
                return method
            method.note = f"reid's own {architecture}, our state dict loaded from the local file"
        else:
            preprocessing = reid.ReIDPreprocessing(interpolation=reid.Interpolation(resize_interpolation(name)))
            encoder, method.setup_s = timed(lambda: reid.ReIDModel(
                copy.deepcopy(model).eval(), torch.device("cpu"), preprocessing))
            method.note = f"reid has no {name}: our network wrapped in ReIDModel ({preprocessing.interpolation.value})"
    except Exception as exc:  # noqa: BLE001 - reported in the table
        method.skipped = f"not runnable offline: {type(exc).__name__}: {exc}"
        return method

    def on_frame() -> torch.Tensor:
        detections = sv.Detections(xyxy=boxes)
        return torch.from_numpy(encoder.extract_embeddings(detections, frame, batch_size=CHUNK))

    def on_files() -> torch.Tensor:
        return torch.from_numpy(encoder.extract_embeddings_from_paths(paths, batch_size=CHUNK, num_workers=workers))

    method.run = {"frame": on_frame, "files": on_files}
    return method


def resize_interpolation(name: str) -> str:
    """The interpolation of our eval transform's Resize ("bilinear", "bicubic")."""
    import modelzoo

    for step in getattr(modelzoo.transforms(name), "transforms", []):
        mode = getattr(step, "interpolation", None)
        if mode is not None:
            return str(getattr(mode, "value", mode))
    return "bilinear"


def ours_method(model: torch.nn.Module, backend: str, precision: str, frame: np.ndarray, boxes: np.ndarray,
                paths: list[str], workers: int | None) -> Method:
    """``modelzoo.FeatureExtractor`` (frame + boxes) and ``extract_features`` (files) on one runtime."""
    import modelzoo
    from modelzoo.inference.features import extract_features

    method = Method(f"ours {backend} {precision}", "ours", backend, precision)
    try:
        with quiet():
            extractor, method.setup_s = timed(lambda: modelzoo.FeatureExtractor(
                model, device="cpu", backend=backend, precision=precision, batch_size=CHUNK))
            if backend != "torch":  # the artifact is cached now: what opening it costs
                _, method.cached_open_s = timed(lambda: modelzoo.FeatureExtractor(
                    model, device="cpu", backend=backend, precision=precision, batch_size=CHUNK))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        method.skipped = f"{type(exc).__name__}: {exc}"
        return method
    runtime = extractor.runtime

    def on_frame() -> torch.Tensor:
        return extractor(frame, boxes, color="bgr")

    def on_files() -> torch.Tensor:
        return extract_features(model, paths, backend=runtime, num_workers=workers, batch_size=CHUNK,
                                progress=False)

    method.run = {"frame": on_frame, "files": on_files}
    return method


def ours_configurations() -> list[tuple[str, str]]:
    configurations = [("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32")]
    if cpu_has_native_bf16():
        configurations += [("torch", "bf16"), ("openvino", "bf16")]
    return configurations


# --------------------------------------------------------------------------
# Measuring


def measure(methods: list[Method], repeats: int) -> list[float]:
    """A warm-up call of each method on each input, then ``repeats`` interleaved rounds.

    The first timed round's features are kept for the comparison.  Returns
    the 1-minute load average before the rounds and after each (other
    processes on a shared machine show there).
    """
    loads = [os.getloadavg()[0]]
    runnable = [method for method in methods if method.run]
    for method in runnable:
        for kind in INPUTS:
            method.run[kind]()
    for round_index in range(repeats):
        for kind in INPUTS:
            for method in runnable:
                started = time.perf_counter()
                features = method.run[kind]()
                method.seconds.setdefault(kind, []).append(time.perf_counter() - started)
                if kind not in method.features:
                    method.features[kind] = features.float()
                rate = len(features) / method.seconds[kind][-1]
                print(f"  round {round_index + 1} {kind:5s} {method.name}: {rate:.1f} images/s", file=sys.stderr,
                      flush=True)
        loads.append(os.getloadavg()[0])
    return loads


def min_cosine(features: torch.Tensor, reference: torch.Tensor) -> float:
    """The lowest per-row cosine similarity of two feature matrices of the same crops."""
    if features.shape != reference.shape:
        return float("nan")
    return torch.nn.functional.cosine_similarity(features.double(), reference.double(), dim=1).min().item()


def summarise(name: str, methods: list[Method], images: dict[str, int]) -> list[dict[str, Any]]:
    """One row of plain data per method and input (what the tables, the targets and the JSON read)."""
    rows = []
    for kind in INPUTS:
        best: dict[str, float] = {}
        for method in methods:
            rates = method.rates(kind, images[kind])
            if rates and (method.family != "ours" or method.name == REFERENCE):
                best[method.family if method.family != "ours" else "ours_torch"] = max(rates)
        reference = next((m.features.get(kind) for m in methods if m.name == REFERENCE), None)
        for method in methods:
            rates = method.rates(kind, images[kind])
            row: dict[str, Any] = {
                "model": name, "input": kind, "images": images[kind], "method": method.name,
                "family": method.family, "backend": method.backend, "precision": method.precision,
                "setup_s": method.setup_s, "cached_open_s": method.cached_open_s, "note": method.note,
                "skipped": method.skipped, "rates": rates,
            }
            if rates:
                top = max(rates)
                row.update(best=top, median=statistics.median(rates))
                for key in ("torchreid", "reid", "ours_torch"):
                    row[f"x_{key}"] = top / best[key] if key in best else None
                features = method.features.get(kind)
                row["min_cosine"] = (min_cosine(features, reference)
                                     if features is not None and reference is not None else None)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------
# Reporting


def _number(value: Any, digits: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return format(value, digits)


def markdown_table(rows: list[dict[str, Any]], kind: str, title: str) -> str:
    lines = [
        f"**{title}**",
        "",
        "| method | setup s (compile) | cached open s | images/s best | images/s median | x torchreid | x reid "
        "| x ours torch fp32 | min cosine vs ours torch fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for row in rows:
        if row["input"] != kind:
            continue
        if row["skipped"]:
            lines.append(f"| {row['method']} | - | - | {row['skipped']} | | | | | |")
            continue
        lines.append(
            f"| {row['method']} | {_number(row['setup_s'], '.2f')} | {_number(row['cached_open_s'], '.2f')} "
            f"| {_number(row.get('best'), '.1f')} | {_number(row.get('median'), '.1f')} "
            f"| {_number(row.get('x_torchreid'), '.2f')} | {_number(row.get('x_reid'), '.2f')} "
            f"| {_number(row.get('x_ours_torch'), '.2f')} | {_number(row.get('min_cosine'), '.7f')} |"
        )
        if row["note"]:
            notes.append(f"{row['method']}: {row['note']}")
    if notes:
        lines += ["", *(f"- {note}" for note in dict.fromkeys(notes))]
    return "\n".join(lines)


@dataclass
class Target:
    text: str
    met: bool | None  # None: could not be measured here
    detail: str


def _best_compiled(rows: list[dict[str, Any]], precision: str, backends: tuple[str, ...]) -> dict[str, Any] | None:
    candidates = [row for row in rows if row["family"] == "ours" and row["backend"] in backends
                  and row["precision"] == precision and row.get("best")]
    return max(candidates, key=lambda row: row["best"]) if candidates else None


def check_targets(rows: list[dict[str, Any]]) -> list[Target]:
    """The targets of issue #13, on each input where the model was measured."""
    targets = []
    for kind in INPUTS:
        def of(model: str) -> list[dict[str, Any]]:
            return [row for row in rows if row["model"] == model and row["input"] == kind]

        osnet = of("osnet_x1_0")
        best = _best_compiled(osnet, "fp32", ("onnxruntime", "openvino"))
        text = f"[{kind}] osnet_x1_0 fp32 (best of ort/ov) >= 3x torchreid and >= 2.5x reid, cosine >= 0.99999"
        if best is None or best.get("x_torchreid") is None or best.get("x_reid") is None:
            targets.append(Target(text, None, "not measured (model, torchreid or reid missing in this run)"))
        else:
            met = best["x_torchreid"] >= 3 and best["x_reid"] >= 2.5 and best["min_cosine"] >= 0.99999
            targets.append(Target(text, met, f"{best['method']}: {best['x_torchreid']:.2f}x torchreid, "
                                             f"{best['x_reid']:.2f}x reid, cosine {best['min_cosine']:.7f}"))
        best = _best_compiled(of("resnet50"), "fp32", ("onnxruntime", "openvino"))
        text = f"[{kind}] resnet50 fp32 compiled (best of ort/ov) >= 1.5x ours torch"
        if best is None or best.get("x_ours_torch") is None:
            targets.append(Target(text, None, "not measured (resnet50 not in this run)"))
        else:
            targets.append(Target(text, best["x_ours_torch"] >= 1.5,
                                  f"{best['method']}: {best['x_ours_torch']:.2f}x ours torch fp32"))
        best = _best_compiled(osnet, "bf16", ("openvino",))
        text = f"[{kind}] osnet_x1_0 bf16 (openvino) >= 5x torchreid, cosine >= 0.999"
        if best is None or best.get("x_torchreid") is None:
            reason = "no native bf16 on this CPU" if not cpu_has_native_bf16() else "osnet_x1_0 not in this run"
            targets.append(Target(text, None, f"not measured ({reason})"))
        else:
            met = best["x_torchreid"] >= 5 and best["min_cosine"] >= 0.999
            targets.append(Target(text, met, f"{best['x_torchreid']:.2f}x torchreid, cosine {best['min_cosine']:.7f}"))
    return targets


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(), "cpus": os.cpu_count(), "available_cpus": available_cpus(),
        "native_bf16": cpu_has_native_bf16(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def machine_line(info: dict[str, Any]) -> str:
    load = ", ".join(f"{value:.2f}" for value in info["load_average"])
    return (f"{info['cpu']}, {info['cpus']} CPUs ({info['available_cpus']} available), torch {info['torch']} "
            f"({info['torch_threads']} threads), native bf16: {'yes' if info['native_bf16'] else 'no'}; "
            f"load average {load}")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in ("reid-modelzoo", "torchreid", "reid", "onnxruntime", "openvino", "onnx", "timm", "supervision"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


# --------------------------------------------------------------------------
# Accuracy (--accuracy)


def accuracy(models: dict[str, torch.nn.Module], data_root: Path, num_ids: int) -> list[dict[str, Any]]:
    """Rank-1 and mAP on a synthetic Market-1501, torch fp32 against OpenVINO bf16 (and the others)."""
    import modelzoo
    from modelzoo.testing import synthetic

    synthetic.write_dataset("market1501", data_root, num_train_ids=2, num_test_ids=num_ids, cameras_per_id=3,
                            images_per_camera=2, query_cameras_per_id=2, num_distractors=20, num_junk=5,
                            overwrite=True)
    configurations = [("torch", "fp32"), ("openvino", "fp32")]
    if cpu_has_native_bf16():
        configurations += [("openvino", "bf16"), ("torch", "bf16")]
    rows = []
    for name, model in models.items():
        reference = None
        for backend, precision in configurations:
            with quiet():
                result = modelzoo.evaluate(model, "market1501", data_root, device="cpu", backend=backend,
                                           precision=precision, progress=False)
            if reference is None:
                reference = result
            rows.append({"model": name, "backend": backend, "precision": precision, "rank1": result.rank1,
                         "mAP": result.mAP, "d_rank1": result.rank1 - reference.rank1,
                         "d_mAP": result.mAP - reference.mAP, "num_query": result.num_query,
                         "num_gallery": result.num_gallery})
            print(f"  accuracy {name} {backend} {precision}: R1 {result.rank1:.2f} mAP {result.mAP:.2f}",
                  file=sys.stderr, flush=True)
    return rows


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = [
        f"**Accuracy on a synthetic Market-1501** ({rows[0]['num_query']} queries, {rows[0]['num_gallery']} gallery "
        "images; UNTRAINED weights: only the differences from torch fp32 mean something)",
        "",
        "| model | backend | precision | Rank-1 % | mAP % | Rank-1 - torch fp32 | mAP - torch fp32 |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {row['backend']} | {row['precision']} | {row['rank1']:.2f} | "
                     f"{row['mAP']:.2f} | {row['d_rank1']:+.2f} | {row['d_mAP']:+.2f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="zoo models (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per method and input")
    parser.add_argument("--threads", type=int, default=available_cpus(),
                        help="torch.set_num_threads (default: every CPU available); ONNX Runtime and OpenVINO "
                             "use every available CPU either way")
    parser.add_argument("--crops", type=int, default=64, help="boxes in the frame (input a)")
    parser.add_argument("--files", type=int, default=256, help="JPEG crops in the folder (input b)")
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding workers for ours (and reid) on files (default: ours' default)")
    parser.add_argument("--accuracy", action="store_true",
                        help="also R1/mAP of bf16 vs fp32 on a synthetic Market-1501")
    parser.add_argument("--accuracy-ids", type=int, default=60, help="test identities of the synthetic Market-1501")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: osnet_x0_25 only, 1 round, 32 crops, 64 files")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.repeats, args.crops, args.files = ["osnet_x0_25"], 1, 32, 64
        args.accuracy_ids = min(args.accuracy_ids, 10)
    if args.repeats < 1 or args.crops < 1 or args.files < 1 or args.threads < 1:
        parser.error("--repeats, --crops, --files and --threads must be at least 1")
    return args


def prepare_model(name: str, mirror: Path, weights_dir: Path) -> tuple[torch.nn.Module, Path, float]:
    """Write ``name``'s untrained checkpoint into the mirror, ``modelzoo.get`` it, and save its state dict.

    Returns the model, a plain state-dict file of it (what torchreid and reid
    load) and the seconds ``get`` took (verify, load, build).
    """
    import modelzoo
    from modelzoo.manifest import resolve_checkpoint
    from modelzoo.testing.checkpoints import write_untrained_checkpoint

    checkpoint = resolve_checkpoint(name)
    write_untrained_checkpoint(checkpoint, mirror)
    with quiet():
        model, seconds = timed(lambda: modelzoo.get(checkpoint.name, device="cpu", progress=False))
    weights = weights_dir / f"{name}_state_dict.pth"
    torch.save({key: value.cpu() for key, value in model.state_dict().items()}, weights)
    return model.eval(), weights, seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = machine()
    print(f"machine at start: {machine_line(start)}", file=sys.stderr)
    from modelzoo.inference.features import default_num_workers

    workers = default_num_workers(torch.device("cpu")) if args.workers is None else args.workers
    rows: list[dict[str, Any]] = []
    tables: list[str] = []
    loaded: dict[str, float] = {}
    accuracy_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_runtimes_") as folder:
        work = Path(folder)
        for sub in ("mirror", "home", "weights", "crops", "data"):
            (work / sub).mkdir()
        os.environ["MODELZOO_MIRROR"] = str(work / "mirror")
        os.environ["MODELZOO_HOME"] = str(work / "home")
        frame = make_frame()
        boxes = make_boxes(args.crops)
        paths = write_images(work / "crops", args.files)
        images = {"frame": len(boxes), "files": len(paths)}
        models = {}
        for name in args.models:
            print(f"{name}:", file=sys.stderr, flush=True)
            model, weights, get_s = prepare_model(name, work / "mirror", work / "weights")
            models[name] = model
            loaded[name] = get_s
            methods = [
                torchreid_method(name, model, weights, frame, boxes, paths),
                reid_method(name, model, weights, frame, boxes, paths, workers),
                *(ours_method(model, backend, precision, frame, boxes, paths, workers)
                  for backend, precision in ours_configurations()),
            ]
            for method in methods:
                if method.skipped:
                    print(f"  {method.name}: {method.skipped}", file=sys.stderr)
            loads = measure(methods, args.repeats)
            model_rows = summarise(name, methods, images)
            for row in model_rows:
                row["load_average_1min"] = [round(value, 2) for value in loads]
            load = f"1-min load average {', '.join(f'{value:.2f}' for value in loads)} (before, after each round)"
            rows += model_rows
            tables.append(markdown_table(model_rows, "frame", f"{name}: (a) {images['frame']} crops from one "
                                         f"{FRAME_SHAPE[1]}x{FRAME_SHAPE[0]} BGR frame (frame + boxes); {load}"))
            tables.append(markdown_table(model_rows, "files", f"{name}: (b) a folder of {images['files']} JPEG crops "
                                         f"(files; {workers} decoding workers for ours and reid); {load}"))
        if args.accuracy:
            accuracy_rows = accuracy(models, work / "data", args.accuracy_ids)
    end = machine()
    targets = check_targets(rows)

    print("# Runtimes side by side (benchmarks/bench_runtimes.py)\n")
    print(f"machine at start: {machine_line(start)}  ")
    print(f"machine at end: {machine_line(end)}  ")
    print("versions: " + ", ".join(f"{package} {version or 'not installed'}" for package, version in versions().items())
          + "  ")
    print(f"{args.repeats} interleaved rounds per method and input, after a warm-up call; {CHUNK} images per "
          f"call/forward pass; crops {', '.join(f'{h}x{w}' for h, w in CROP_SIZES)} in the folder, 64-480 px tall "
          "in the frame; input 256x128. Weights: untrained, written in each zoo's format and loaded by "
          "modelzoo.get from a local mirror. *setup*: first construction (for a compiled backend: export, "
          "compile, parity check); *cached open*: a second construction from the cache. Speed-ups are best "
          "round against best round.\n")
    print("\n\n".join(tables))
    print("\n**Targets (issue #13)**\n")
    for target in targets:
        state = "MET" if target.met else ("not measured" if target.met is None else "NOT MET")
        print(f"- {state}: {target.text} -- {target.detail}")
    if accuracy_rows:
        print("\n" + accuracy_table(accuracy_rows))
    if args.json is not None:
        report = {
            "machine_start": start, "machine_end": end, "versions": versions(),
            "settings": {"models": args.models, "repeats": args.repeats, "threads": args.threads,
                         "crops": images["frame"], "files": images["files"], "workers": workers,
                         "chunk": CHUNK, "frame_shape": list(FRAME_SHAPE)},
            "get_seconds": loaded,
            "results": rows,
            "targets": [{"target": t.text, "met": t.met, "detail": t.detail} for t in targets],
            "accuracy": accuracy_rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
