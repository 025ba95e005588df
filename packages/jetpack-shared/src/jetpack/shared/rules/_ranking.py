"""Ranking rules for memory: reciprocal rank fusion and the retention score."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import TypeVar

__all__ = ["RRF_K", "retention_score", "rrf_fuse"]

RRF_K = 60
"""The usual RRF constant: damps the weight of the very top ranks."""

K = TypeVar("K", bound=Hashable)


def rrf_fuse(rankings: Sequence[Sequence[K]], k: int = RRF_K) -> list[tuple[K, float]]:
    """Fuse ranked lists: ``score(d) = Σ 1 / (k + rank(d))`` with ranks from 1.

    Ties keep the order of first appearance (earlier lists first).
    """
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    order = {key: i for i, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def retention_score(
    importance: float,
    last_accessed: datetime,
    access_count: int,
    now: datetime,
    half_life_days: float = 14.0,
) -> float:
    """How much a memory is worth keeping, in 0..1; adaptive compaction drops the lowest.

    ``0.6 × importance + 0.25 × recency + 0.15 × use``, where recency halves every
    ``half_life_days`` since the last access and use is ``log(1+n) / log(1+20)``
    capped at 1 (twenty retrieves count as fully used).
    """
    age_days = max((now - last_accessed).total_seconds(), 0.0) / 86_400
    recency = 0.5 ** (age_days / half_life_days)
    use = min(math.log1p(max(access_count, 0)) / math.log1p(20), 1.0)
    return float(0.6 * importance + 0.25 * recency + 0.15 * use)
