"""Average query expansion (AQE), as fast-reid's ``TEST.AQE``, computed in blocks.

Each image's feature is replaced by the mean of its ``k`` most similar
images' features, each weighted by its cosine similarity to the power
``alpha`` (Chum et al., ICCV 2007; fast-reid's defaults: ``k`` 5, ``alpha``
3, one iteration).  As in fast-reid, every image is expanded -- query and
gallery alike -- among all of them, its own feature included (its similarity
to itself is 1); the features averaged are the raw ones, the similarities
those of the L2-normalised ones, and the mean divides by ``k`` (not by the
sum of the weights).

fast-reid builds the ``(q + g)^2`` similarity matrix (35 GB for MSMT17);
here a block of rows at a time is one matrix product, reduced to its ``k``
largest entries at once.
"""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np
import torch
from torch.nn import functional as F

ArrayLike = Union[torch.Tensor, np.ndarray]

#: Similarities per block (128 MB of float32).
_BLOCK_ELEMENTS = 1 << 25


def average_query_expansion(
    query_features: ArrayLike,
    gallery_features: ArrayLike,
    k: int = 5,
    alpha: float = 3.0,
    iterations: int = 1,
) -> tuple[ArrayLike, ArrayLike]:
    """Query and gallery features after average query expansion (fast-reid's AQE).

    Memory: three copies of the features (together, normalised, expanded)
    and one block of similarities (128 MB); on the features' device, so on a
    GPU when they are there.

    Args:
        query_features: ``(q, dim)`` tensor or NumPy array.
        gallery_features: ``(g, dim)``.
        k: Neighbours averaged, the image itself included (fast-reid: 5).
        alpha: Power of the cosine similarity that weights each neighbour
            (fast-reid: 3).
        iterations: Expansions in a row, each on the previous one's features
            (fast-reid's ``QE_TIME``: 1).

    Returns:
        ``(query, gallery)`` expanded features: NumPy arrays when both inputs
        are, else tensors on the features' device.

    Raises:
        ValueError: Features that are not 2-D or of different widths, ``k``
            not in ``1..q + g``, a non-finite ``alpha`` or ``iterations`` below 1.
    """
    from modelzoo.evaluation.distance import as_feature_tensors

    numpy_in = isinstance(query_features, np.ndarray) and isinstance(gallery_features, np.ndarray)
    query, gallery = as_feature_tensors(query_features, gallery_features)
    num_query, total = int(query.shape[0]), int(query.shape[0] + gallery.shape[0])
    _check_parameters(k, alpha, iterations, total)
    features = torch.cat([query, gallery])
    for _ in range(iterations):
        features = _expanded(features, k, float(alpha))
    expanded_query, expanded_gallery = features[:num_query], features[num_query:]
    if numpy_in:
        return expanded_query.numpy(), expanded_gallery.numpy()
    return expanded_query, expanded_gallery


def _check_parameters(k: Any, alpha: Any, iterations: Any, total: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= total:
        raise ValueError(f"k must be a whole number of neighbours in 1..{total} (the images), got {k!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number (fast-reid uses 3.0), got {alpha!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a whole number, at least 1; got {iterations!r}")


def _expanded(features: torch.Tensor, k: int, alpha: float) -> torch.Tensor:
    """One expansion of every row of ``features`` among all of them."""
    normalised = F.normalize(features, p=2, dim=1)
    expanded = torch.empty_like(features)
    rows = max(1, _BLOCK_ELEMENTS // features.shape[0])
    similarities = torch.empty(min(rows, features.shape[0]) * features.shape[0], dtype=features.dtype,
                               device=features.device)  # reused: no page faults of a fresh block each time
    for start in range(0, features.shape[0], rows):
        stop = min(start + rows, features.shape[0])
        block = similarities[: (stop - start) * features.shape[0]].view(stop - start, -1)
        torch.mm(normalised[start:stop], normalised.t(), out=block)
        nearest, neighbours = torch.topk(block, k, dim=1)
        weights = nearest.pow_(alpha).unsqueeze(2)
        expanded[start:stop] = (features[neighbours] * weights).mean(dim=1)
    return expanded
