"""Features from images: batched extraction from files, in-memory crops for trackers, and opt-in sharding.

* :func:`~modelzoo.inference.features.extract_features` -- image files -> a float32 ``(N, D)`` tensor;
* :class:`~modelzoo.inference.extractor.FeatureExtractor` -- crops held in memory (tracking pipelines);
* :func:`~modelzoo.inference.distributed.extract_features_distributed` -- the same split across the
  ranks of a process group the caller started.
"""

from modelzoo.inference.distributed import extract_features_distributed
from modelzoo.inference.extractor import FeatureExtractor
from modelzoo.inference.features import extract_features

__all__ = ["FeatureExtractor", "extract_features", "extract_features_distributed"]
