"""Batched feature extraction from image files, on any runtime.

Images are decoded and transformed (PIL, like torchreid) in DataLoader
workers, batched, and run through the model's runtime
(:mod:`modelzoo.inference.runtimes`): PyTorch by default (BatchNorm folded,
channels-last, ``inference_mode``), or a compiled ONNX Runtime, OpenVINO or
TensorRT artifact proven equal to it.  Features come back as float32 on the
CPU, in the order of the input paths.

On a CPU the network is almost all of the cost (decoding and resizing a
person crop takes about 1 ms, a ResNet-50 forward pass about 40 ms), so the
speed-ups are in how the network runs, not in the input pipeline; on a small
CPU the images are decoded in this process, so no decoder takes a core from
the network (see :func:`default_num_workers`).
``precision="fp32"`` (the default) reproduces the published setting; bf16
(CPUs with native bf16, CUDA) and fp16 (CUDA) are opt-in and refused where
the hardware would only emulate them.

``flip=True`` (off by default: the published numbers do not use it) is the
flip test of fast-reid's ``TEST.FLIP``: each embedding is averaged with that of
the horizontally mirrored image, at twice the cost.
"""

from __future__ import annotations

import logging
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from modelzoo.devices import available_cpus, resolve_device
from modelzoo.errors import ImageReadError
from modelzoo.inference.precision import check_precision
from modelzoo.inference.runtimes import Runtime, load_runtime
from modelzoo.inference.runtimes.torch_backend import (  # noqa: F401  (the names this module always had)
    autocast_context,
    fold_batchnorm,
    prepare_model,
    use_channels_last,
)
from modelzoo.models import model_info

logger = logging.getLogger(__name__)



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
    With the CPU running it: one per 8 CPUs, so none (decoding in this
    process, between batches) below 8.  A CPU forward pass keeps every core
    busy and decoding is a few percent of the work, so a decoder process
    only takes a core from the network: on 2 cores one worker made ONNX
    Runtime's ResNet-50 15% slower (29.9 against 35.1 images/s) than
    decoding in turn.

    Args:
        device: where the model runs (None: treated as a GPU, the old default).
    """
    available = available_cpus()
    if device is not None and device.type == "cpu":
        return available // 8
    return max(0, min(8, available))


def extract_features(
    model: nn.Module,
    paths: Sequence[str | Path],
    transform: Callable[[Any], torch.Tensor] | None = None,
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    backend: str | Runtime = "torch",
    channels_last: bool | None = None,
    fold_bn: bool = True,
    flip: bool = False,
    progress: bool = True,
    description: str = "features",
    cache_dir: str | Path | None = None,
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
        precision: "fp32" (default), or the opt-in "bf16" (CPUs with native
            bf16, CUDA) / "fp16" (CUDA); refused where not native.
        backend: "torch" (default), "onnxruntime", "openvino", "tensorrt"
            (CUDA): a compiled artifact of the model, proven equal to it and
            cached beside its weights (see :mod:`modelzoo.inference.runtimes`);
            or a :class:`~modelzoo.inference.runtimes.Runtime` already made
            (then ``model`` only provides the transform, and ``device``,
            ``precision``, ``channels_last`` and ``fold_bn`` must be left unset).
        channels_last: run convolutions in channels-last memory format
            (None: where it is faster, see :func:`use_channels_last`); torch only.
        fold_bn: fold BatchNorm into the convolutions of a copy of the model
            (float rounding differences only; False runs the model as is); torch only.
        flip: average each embedding with that of the mirrored image (see
            :func:`embed`; not the published setting).
        progress: a tqdm bar on a terminal.
        description: the progress bar's label.
        cache_dir: where a compiled backend's artifact is kept (default ``MODELZOO_HOME``).

    Returns:
        A float32 CPU tensor with one row per path; (0, 0) for no paths.

    Raises:
        ValueError: a batch size below 1, a negative worker count, an
            unknown precision or backend, or no transform.
        PrecisionError: a precision the backend and device cannot run natively.
        BackendUnavailableError: the backend's extra is not installed.
    """
    _check_whole_number("batch_size", batch_size, minimum=1)
    if num_workers is not None:
        _check_whole_number("num_workers", num_workers, minimum=0)
    transform = transform or model_transform(model)
    if isinstance(backend, Runtime):
        _refuse_settings_of_a_given_runtime(device, precision, channels_last, fold_bn)
        runtime = backend
    else:
        target = resolve_device(device)
        check_precision(backend, target, precision)  # before anything is compiled, and for no images too
    if len(paths) == 0:
        return torch.empty(0, 0)
    if not isinstance(backend, Runtime):
        runtime = load_runtime(model, backend, device=target, precision=precision, channels_last=channels_last,
                               fold_bn=fold_bn, max_batch=batch_size, cache_dir=cache_dir)
    workers = default_num_workers(runtime.device) if num_workers is None else num_workers
    loader = _loader(paths, transform, batch_size, workers, pin=runtime.device.type == "cuda")
    return _run(runtime, _progress(loader, progress, description), flip)


def _refuse_settings_of_a_given_runtime(device: Any, precision: str, channels_last: Any, fold_bn: bool) -> None:
    given = [name for name, value, default in (("device", device, None), ("precision", precision, "fp32"),
                                               ("channels_last", channels_last, None), ("fold_bn", fold_bn, True))
             if value != default]
    if given:
        raise ValueError(f"{', '.join(given)} set how a runtime is made; the runtime given is already made "
                         "(pass backend='name' instead to have one made)")


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


def embed(network: Callable[[torch.Tensor], torch.Tensor], pixels: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The network's embeddings of a batch, as float32; with ``flip``, averaged with the mirrored batch's.

    The flip test as fast-reid's ``TEST.FLIP`` does it: the batch flipped along
    its width, and the two embeddings averaged as the network returns them,
    *before* any L2 normalisation (fast-reid normalises later, for the cosine
    distance; ``FeatureExtractor(normalize=True)`` normalises the average).

    Args:
        network: a re-ID network in eval mode, or a :class:`~modelzoo.inference.runtimes.Runtime`.
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


def _run(runtime: Runtime, batches: Iterable[torch.Tensor | UnreadableImage], flip: bool) -> torch.Tensor:
    chunks = []
    with torch.inference_mode():
        for batch in batches:
            if isinstance(batch, UnreadableImage):
                raise batch.error()
            batch = batch.to(runtime.device, non_blocking=True, memory_format=runtime.memory_format)
            chunks.append(embed(runtime, batch, flip).cpu())
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
