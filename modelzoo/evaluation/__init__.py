"""Evaluation maths: distances, rank metrics (CMC/mAP/mINP) and re-ranking.

Everything here matches torchreid's evaluation numerically, but reads the
distance matrix once instead of sorting it, and keeps memory bounded.
"""

from modelzoo.evaluation.distance import compute_distance
from modelzoo.evaluation.rank import RankResult, evaluate_from_features, evaluate_rank
from modelzoo.evaluation.rerank import ReRankedDistances, re_ranking, re_ranking_from_features

__all__ = [
    "RankResult",
    "ReRankedDistances",
    "compute_distance",
    "evaluate_from_features",
    "evaluate_rank",
    "re_ranking",
    "re_ranking_from_features",
]
