"""Average the rank metrics of several test sets drawn from one dataset (VehicleID's random galleries).

VehicleID has no fixed gallery: each trial draws one gallery image per
vehicle (``modelzoo.datasets.vehicleid.random_gallery``, seeded by the trial
number) and queries with the others.  Its published numbers are an average
over such draws, so an evaluation ranks every trial and reports the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelzoo.evaluation.rank import RankResult


def average_rankings(rankings: Sequence[RankResult]) -> RankResult:
    """The mean of ``rankings``: CMC point by point, mAP and mINP (one ranking is returned as it is).

    The CMC curves are cut to the shortest one; query counts are the
    rounded means (every VehicleID trial has the same counts).

    Raises:
        ValueError: no ranking.
    """
    if not rankings:
        raise ValueError("no ranking to average")
    if len(rankings) == 1:
        return rankings[0]
    length = min(len(r.cmc) for r in rankings)
    return RankResult(
        cmc=np.mean([np.asarray(r.cmc[:length], dtype=np.float64) for r in rankings], axis=0),
        mAP=float(np.mean([r.mAP for r in rankings])),
        mINP=float(np.mean([r.mINP for r in rankings])),
        num_valid_queries=round(float(np.mean([r.num_valid_queries for r in rankings]))),
        num_queries=round(float(np.mean([r.num_queries for r in rankings]))),
    )


def per_trial(rankings: Sequence[RankResult]) -> dict[str, list[float]]:
    """Rank-1, Rank-5, mAP and mINP of each trial, in % (for the report's settings)."""
    def at(ranking: RankResult, k: int) -> float:
        return 100.0 * float(ranking.cmc[min(k, len(ranking.cmc)) - 1])

    return {
        "rank1": [at(r, 1) for r in rankings],
        "rank5": [at(r, 5) for r in rankings],
        "mAP": [100.0 * r.mAP for r in rankings],
        "mINP": [100.0 * r.mINP for r in rankings],
    }
