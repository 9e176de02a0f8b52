"""Evaluation maths: distances, rank metrics (CMC/mAP/mINP), re-ranking and query expansion.

Everything here matches torchreid's evaluation numerically (query expansion:
fast-reid's, to float rounding), but reads the distance matrix once instead of
sorting it, and keeps memory bounded.
"""

from modelzoo.evaluation.distance import compute_distance
from modelzoo.evaluation.query_expansion import average_query_expansion
from modelzoo.evaluation.rank import RankResult, evaluate_from_features, evaluate_rank
from modelzoo.evaluation.rerank import ReRankedDistances, re_ranking, re_ranking_from_features

__all__ = [
    "RankResult",
    "ReRankedDistances",
    "average_query_expansion",
    "compute_distance",
    "evaluate_from_features",
    "evaluate_rank",
    "re_ranking",
    "re_ranking_from_features",
]
