"""Small image files and a small network for the feature-extraction tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

SMALL_INPUT = (32, 16)  # (height, width): tiny, so the tests stay fast


def write_images(folder: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` distinct images of person-crop-like sizes; every fourth is grayscale, one a PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        height, width = ((128, 64), (96, 40), (256, 128), (70, 30))[index % 4]
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if index % 4 == 3:
            image = image.convert("L")
        suffix = ".png" if index == 1 else ".jpg"
        path = folder / f"{index:03d}{suffix}"
        image.save(path)
        paths.append(str(path))
    return paths


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale or palette images to RGB (a module-level function, so workers can pickle it)."""
    return image.convert("RGB")


def small_transform(size: tuple[int, int] = SMALL_INPUT) -> T.Compose:
    """The eval transform of the zoo (to RGB, bilinear Resize, ToTensor, ImageNet Normalize) at ``size``."""
    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize(size, interpolation=T.InterpolationMode.BILINEAR),
            T.ToTensor(),
            T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        ]
    )


def small_network(seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU twice, pooled: random weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    network = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial statistics, so folding them is tested
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return network.eval()


def features_one_by_one(model: nn.Module, paths: list[str], transform) -> torch.Tensor:
    """The plain way: open each image, transform it, run the model on it alone."""
    rows = []
    with torch.no_grad():
        for path in paths:
            with Image.open(path) as image:
                rows.append(model(transform(image).unsqueeze(0)))
    return torch.cat(rows)
