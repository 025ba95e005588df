"""Ranking rules for memory: hybrid fusion of BM25 and vector results, and the retention score."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import TypeVar

from jetpack.shared.errors import ValidationError

__all__ = ["HYBRID_DECISIVE_RATIO", "HYBRID_TEXT_WEIGHT", "fuse_hybrid", "retention_score"]

HYBRID_TEXT_WEIGHT = 0.2
"""BM25's share of the fused score; the vector side has ``1 - HYBRID_TEXT_WEIGHT``.

Chosen on the tuning half of the memory-eval set (see jetpack-cass's README): the
middle of the 0.18–0.22 band that ranks best there on both query styles.
"""

HYBRID_DECISIVE_RATIO = 2.0
"""A BM25 hit scoring at least this many times the runner-up is a decisive lexical match."""

K = TypeVar("K", bound=Hashable)


def _scores(name: str, ranked: Sequence[tuple[K, float]]) -> dict[K, float]:
    """Key → score (the first occurrence of a key counts); non-finite scores are refused."""
    out: dict[K, float] = {}
    for key, score in ranked:
        number = isinstance(score, int | float) and not isinstance(score, bool)
        if not number or not math.isfinite(score):
            raise ValidationError(name, f"score of {key!r} must be a finite number, not {score!r}")
        out.setdefault(key, float(score))
    return out


def fuse_hybrid(
    text: Sequence[tuple[K, float]],
    semantic: Sequence[tuple[K, float]],
    text_weight: float = HYBRID_TEXT_WEIGHT,
    decisive_ratio: float = HYBRID_DECISIVE_RATIO,
) -> list[tuple[K, float]]:
    """Fuse a BM25 result list and a vector result list into one ranking, best first.

    Inputs are ``(key, score)`` pairs in any order, as every memory store has them:

    - ``text``: BM25 scores, higher is better, ``0`` or less meaning no lexical
      evidence (SQLite FTS5's ``-bm25()``, the reference store's Okapi BM25);
    - ``semantic``: cosine similarities of the query vector (an exact top-k or
      Vectorize's ``score``).

    The fused score of a key is a convex combination of the two scores, each made
    comparable within its own list::

        (1 - text_weight) × (cos - cos_min) / (cos_max - cos_min)    # 1 for the best vector hit
        + text_weight × bm25 / bm25_max                             # 1 for the best BM25 hit

    A key missing from a list gets 0 from it (below every listed hit, or no match
    at all). When the best BM25 hit scores at least ``decisive_ratio`` times the
    runner-up (or is the only hit), it is a decisive lexical match, typically an
    exact identifier (``bd-7f3a``, ``test_claim_race``), and gets ``+1``, so it
    leads even when the embedding misses it or the memory has no vector yet. Fused
    scores are thus in 0..2. Ties keep the order of first appearance, ``text`` first.

    Why not reciprocal rank fusion: RRF adds a share for every list a key appears
    in, so same-topic distractors that match common words beat the right answer
    that only the embedding finds (paraphrase recall@5 0.65 against 0.94 for the
    vectors alone on the memory-eval set). Here a weak BM25 list (many hits of
    similar score) moves the vector ranking only a little.
    """
    if not 0.0 <= text_weight <= 1.0:
        raise ValidationError("text_weight", f"must be between 0 and 1, not {text_weight!r}")
    if not decisive_ratio >= 1.0:
        raise ValidationError("decisive_ratio", f"must be at least 1, not {decisive_ratio!r}")
    bm25 = {k: max(v, 0.0) for k, v in _scores("text", text).items()}
    cosine = _scores("semantic", semantic)
    fused: dict[K, float] = dict.fromkeys([*bm25, *cosine], 0.0)
    top = sorted(bm25.values(), reverse=True)[:2]
    if top and top[0] > 0.0:
        for key, score in bm25.items():
            fused[key] += text_weight * score / top[0]
        if len(top) == 1 or top[0] >= decisive_ratio * top[1]:
            fused[next(k for k, v in bm25.items() if v == top[0])] += 1.0
    if cosine:
        low, high = min(cosine.values()), max(cosine.values())
        for key, score in cosine.items():
            share = (score - low) / (high - low) if high > low else 1.0
            fused[key] += (1.0 - text_weight) * share
    order = {key: i for i, key in enumerate(fused)}
    return sorted(fused.items(), key=lambda item: (-item[1], order[item[0]]))


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
