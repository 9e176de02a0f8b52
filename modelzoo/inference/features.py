"""Batched feature extraction from image files.

Images are decoded and transformed (PIL, like torchreid) in DataLoader
workers, batched, and run through the model under ``torch.inference_mode``
on the chosen device.  Features come back as float32 on the CPU, in the
order of the input paths.

On a CPU the network is almost all of the cost (decoding and resizing a
person crop takes about 1 ms, a ResNet-50 forward pass about 40 ms), so the
speed-ups are in how the network runs, not in the input pipeline:

* BatchNorm layers are folded into the convolutions before them
  (``torch.fx``; a model that cannot be traced runs unfolded);
* activations use the channels-last memory format, which oneDNN's CPU
  convolutions take as it is (NCHW tensors are reordered around each one);
* the forward pass runs under ``inference_mode``.

Folding changes the features by float rounding only (relative differences
around 1e-6).  ``precision="fp32"`` (the default) reproduces the published
setting; ``"bf16"`` (CPU or CUDA) and ``"fp16"`` (CUDA) are opt-in autocast
modes for throughput.  bf16 is only fast on CPUs with native bf16
instructions (``avx512_bf16`` or AMX); elsewhere it is emulated and slower
than fp32, and a warning says so.

``flip=True`` (off by default: the published numbers do not use it) is the
flip test of fast-reid's ``TEST.FLIP``: each embedding is averaged with that of
the horizontally mirrored image, at twice the cost.
"""

from __future__ import annotations

import logging
import numbers
import sys
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from modelzoo.devices import available_cpus, cpu_has_native_bf16, resolve_device
from modelzoo.errors import ImageReadError
from modelzoo.models import model_info

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
FOLDED_INTO = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)  # the layers torch.fx folds a BatchNorm into


@dataclass(frozen=True)
class UnreadableImage:
    """An image file that could not be decoded, carried out of a loader worker as data, not as a traceback."""

    path: Path
    reason: str

    def error(self) -> ImageReadError:
        return ImageReadError(
            f"cannot read the image {self.path} ({self.reason}); check the dataset folder with "
            "`modelzoo doctor DATASET --data-root DIR`"
        )


class ImageFiles(Dataset):
    """Image files decoded with PIL (as RGB) and passed through ``transform``.

    A file that cannot be decoded (empty, truncated, not an image) is returned
    as an :class:`UnreadableImage`, so the caller can name it in one line.
    """

    def __init__(self, paths: Sequence[str | Path], transform: Callable[[Any], torch.Tensor]):
        self.paths = [Path(p) for p in paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | UnreadableImage:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:  # PIL raises all of these
            return UnreadableImage(path, str(exc)[:200] or type(exc).__name__)


def collate_images(items: list[torch.Tensor | UnreadableImage]) -> torch.Tensor | UnreadableImage:
    """A batch of images, or the first unreadable one of them."""
    for item in items:
        if isinstance(item, UnreadableImage):
            return item
    return torch.stack(items)  # type: ignore[arg-type]


def default_num_workers(device: torch.device | None = None) -> int:
    """How many decoding processes to start for a model running on ``device``.

    With a GPU running the model: the CPUs this process may use, at most 8.
    With the CPU running it: one per 8 CPUs, at least one.  A CPU forward
    pass already keeps every core busy and decoding is about 2% of the work,
    so more decoders would only take cores from the network; one decoder
    still overlaps that 2% with the forward pass.

    Args:
        device: where the model runs (None: treated as a GPU, the old default).
    """
    available = available_cpus()
    if device is not None and device.type == "cpu":
        return max(1, available // 8)
    return max(0, min(8, available))


def autocast_context(device: torch.device, precision: str) -> ContextManager:
    """The autocast context for ``precision`` on ``device`` (none for fp32).

    Raises:
        ValueError: an unknown precision, or fp16 on a device other than CUDA.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device; on the CPU use precision='bf16'")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        _warn_emulated_bf16()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@lru_cache(maxsize=1)
def _warn_emulated_bf16() -> None:
    """Once per process: query and gallery extraction would say it twice."""
    logger.warning(
        "this CPU has no native bf16 instructions (avx512_bf16 or AMX): bf16 is emulated and slower "
        "than fp32 here; use precision='fp32'"
    )


def use_channels_last(device: torch.device, precision: str) -> bool:
    """Whether channels-last is the faster memory format for this device and precision.

    oneDNN's CPU convolutions prefer it at every precision; on CUDA it pays
    with the tensor cores of reduced precision only.
    """
    return device.type == "cpu" or precision != "fp32"


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode ``model`` with each BatchNorm folded into the convolution (or linear layer) before it.

    Uses ``torch.fx``, which folds a pair only when the BatchNorm is the
    layer's sole consumer.  The model is returned unchanged when it cannot be
    traced symbolically (data-dependent control flow, e.g. HACNN), when a
    layer is called more than once (folding would change every call), and
    when it is in training mode.

    Args:
        model: a network in eval mode; it is not modified.
    """
    if model.training:
        return model
    from torch import fx
    from torch.fx.experimental.optimization import fuse

    try:
        traced = fx.symbolic_trace(model)  # shares the layers with model; fuse copies before changing them
    except Exception as exc:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        logger.debug("BatchNorm folding skipped for %s: %s", type(model).__name__, exc)
        return model
    if _folds_a_shared_layer(traced):
        logger.debug("BatchNorm folding skipped for %s: a layer is called more than once", type(model).__name__)
        return model
    return fuse(traced, inplace=False, no_trace=True)


def _folds_a_shared_layer(traced: Any) -> bool:
    """Whether a convolution/linear layer followed by a BatchNorm is also called elsewhere.

    Folding replaces the layer itself, so every other call of it would
    change too.  (Shared layers that no BatchNorm follows, like OSNet's
    channel gate, are harmless.)
    """
    layers = dict(traced.named_modules())
    calls = Counter(node.target for node in traced.graph.nodes if node.op == "call_module")
    for node in traced.graph.nodes:
        if node.op != "call_module" or not isinstance(layers[node.target], nn.modules.batchnorm._BatchNorm):
            continue
        source = node.args[0]
        if getattr(source, "op", None) == "call_module" and isinstance(layers[source.target], FOLDED_INTO):
            if calls[source.target] > 1:
                return True
    return False


def prepare_model(
    model: nn.Module, device: torch.device, *, channels_last: bool, fold: bool
) -> nn.Module:
    """``model`` in eval mode, optionally BatchNorm-folded, on ``device`` in the memory format asked for.

    Without folding the model itself is moved (like ``model.to``); with
    folding, the folded copy is moved and ``model`` stays where it was (in
    eval mode).
    """
    model.eval()
    runnable = fold_batchnorm(model) if fold else model
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return runnable.to(device).to(memory_format=memory_format)


def extract_features(
    model: nn.Module,
    paths: Sequence[str | Path],
    transform: Callable[[Any], torch.Tensor] | None = None,
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
    fold_bn: bool = True,
    flip: bool = False,
    progress: bool = True,
    description: str = "features",
) -> torch.Tensor:
    """Embeddings of the images at ``paths``: a float32 (N, D) tensor on the CPU.

    Args:
        model: a re-ID network; it is put in eval mode (and moved to
            ``device`` unless ``fold_bn`` made a copy).
        paths: image files, in the order the rows of the result follow.
        transform: PIL image -> tensor; default: the transform attached by
            ``modelzoo.get`` / ``build`` (``model.modelzoo_info.transform``).
        batch_size: images per forward pass.
        num_workers: decoding processes (default: see :func:`default_num_workers`).
        device: where the model runs (None: CUDA when available, else CPU).
        precision: "fp32" (default), or the opt-in "bf16"/"fp16" autocast.
        channels_last: run convolutions in channels-last memory format
            (None: where it is faster, see :func:`use_channels_last`).
        fold_bn: fold BatchNorm into the convolutions of a copy of the model
            (float rounding differences only; False runs the model as is).
        flip: average each embedding with that of the mirrored image (see
            :func:`embed`; not the published setting).
        progress: a tqdm bar on a terminal.
        description: the progress bar's label.

    Returns:
        A float32 CPU tensor with one row per path; (0, 0) for no paths.

    Raises:
        ValueError: a batch size below 1, a negative worker count, an
            unknown precision, fp16 on the CPU, or no transform.
    """
    _check_whole_number("batch_size", batch_size, minimum=1)
    if num_workers is not None:
        _check_whole_number("num_workers", num_workers, minimum=0)
    transform = transform or model_transform(model)
    target = resolve_device(device)
    autocast = autocast_context(target, precision)
    if channels_last is None:
        channels_last = use_channels_last(target, precision)
    if len(paths) == 0:
        return torch.empty(0, 0)
    runnable = prepare_model(model, target, channels_last=channels_last, fold=fold_bn)
    workers = default_num_workers(target) if num_workers is None else num_workers
    loader = _loader(paths, transform, batch_size, workers, pin=target.type == "cuda")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return _run(runnable, _progress(loader, progress, description), target, memory_format, autocast, flip)


def model_transform(model: nn.Module) -> Callable[[Any], torch.Tensor]:
    """The eval transform of a model from ``get``/``build``.

    Raises:
        ValueError: the model is not from ``get``/``build`` (pass a transform).
    """
    info = model_info(model)
    if info is None:
        raise ValueError("the model is not from modelzoo.get or modelzoo.build, so it has no eval transform: "
                         "pass transform=modelzoo.transforms(name, dataset)")
    return info.transform


def _check_whole_number(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number, at least {minimum}; got {value!r}")


def embed(network: nn.Module, pixels: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The network's embeddings of a batch, as float32; with ``flip``, averaged with the mirrored batch's.

    The flip test as fast-reid's ``TEST.FLIP`` does it: the batch flipped along
    its width, and the two embeddings averaged as the network returns them,
    *before* any L2 normalisation (fast-reid normalises later, for the cosine
    distance; ``FeatureExtractor(normalize=True)`` normalises the average).

    Args:
        network: a re-ID network in eval mode.
        pixels: a preprocessed ``(N, 3, H, W)`` batch on the network's device.
        flip: also run the mirrored batch and average.
    """
    features = network(pixels).float()
    if flip:
        mirrored = torch.flip(pixels, dims=[3])
        if pixels.is_contiguous(memory_format=torch.channels_last):
            mirrored = mirrored.contiguous(memory_format=torch.channels_last)
        features = (features + network(mirrored).float()) / 2
    return features


def _run(
    model: nn.Module,
    batches: Iterable[torch.Tensor | UnreadableImage],
    device: torch.device,
    memory_format: torch.memory_format,
    autocast: ContextManager,
    flip: bool,
) -> torch.Tensor:
    chunks = []
    with torch.inference_mode(), autocast:
        for batch in batches:
            if isinstance(batch, UnreadableImage):
                raise batch.error()
            batch = batch.to(device, non_blocking=True, memory_format=memory_format)
            chunks.append(embed(model, batch, flip).cpu())
    return torch.cat(chunks)


def _loader(
    paths: Sequence[str | Path], transform: Callable, batch_size: int, num_workers: int, pin: bool
) -> DataLoader:
    batches = -(-len(paths) // batch_size)
    workers = min(int(num_workers), batches)  # no idle processes for tiny sets
    return DataLoader(
        ImageFiles(paths, transform),
        batch_size=int(batch_size),
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        collate_fn=collate_images,
        # DataLoader already gives each worker one torch thread; PIL decodes on one thread too.
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )


def _progress(loader: DataLoader, enabled: bool, description: str) -> Iterable[torch.Tensor]:
    from tqdm.auto import tqdm

    return tqdm(loader, desc=description, unit="batch", disable=not enabled or not sys.stderr.isatty(), leave=False)
