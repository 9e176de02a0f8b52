"""The eval preprocessing a checkpoint expects, built from its manifest record.

Resize to exactly the input size (no aspect preservation, bilinear), to a
tensor in [0, 1], ImageNet mean/std.  Images must be RGB: :class:`ToRGB`
converts PIL images of other modes; NumPy arrays from OpenCV are BGR and must
be converted by the caller (``image[..., ::-1]``), see user-pain row 14.
"""

from __future__ import annotations

from typing import Any

from modelzoo.manifest import Preprocessing


class ToRGB:
    """Convert a PIL image to RGB (grayscale, palette and RGBA inputs)."""

    def __call__(self, image: Any) -> Any:
        return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image

    def __repr__(self) -> str:
        return "ToRGB()"


def build_transform(pre: Preprocessing) -> Any:
    """A torchvision ``Compose`` reproducing torchreid's test transform for ``pre``."""
    import torchvision.transforms as T

    interpolation = T.InterpolationMode(pre.interpolation)
    return T.Compose(
        [
            ToRGB(),
            T.Resize(pre.input_size, interpolation=interpolation),
            T.ToTensor(),
            T.Normalize(mean=pre.mean, std=pre.std),
        ]
    )
