"""The store's four searches: BM25, exact cosine, by query, and hybrid (both fused)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from jetpack.cass._checks import check_limit, check_query
from jetpack.cass._db import Database
from jetpack.cass._index import VectorIndex
from jetpack.cass._query import trigram_query, word_query
from jetpack.cass._sql import fetch_all, fetch_by_seq, read_meta
from jetpack.shared import Embedder, MemoryEntry
from jetpack.shared.rules import fuse_hybrid
from jetpack.shared.sqlite_errors import translate_sqlite_errors

__all__ = ["SearchMixin"]

logger = logging.getLogger(__name__)


def _candidates(limit: int) -> int:
    """How deep each ranking goes before fusion."""
    return max(limit * 5, 50)


class SearchMixin:
    """Search methods of :class:`~jetpack.cass.CASSAdapter` (needs ``_db`` and ``_embedder``)."""

    _db: Database
    _embedder: Embedder | None
    db_path: Path

    def __init__(self, index: VectorIndex) -> None:
        self._index = index

    @property
    def matrix_loads(self) -> int:
        """How many times every vector was read into the matrix (for tests and benchmarks)."""
        return self._index.full_loads

    # -- text -----------------------------------------------------------------

    async def _bm25(self, conn: AsyncConnection, query: str, n: int) -> list[tuple[int, float]]:
        """``(seq, score)`` best first: word BM25, then trigram substring hits to fill ``n``."""
        ranked: list[tuple[int, float]] = []
        expr = word_query(query)
        if expr is not None:
            found = await fetch_all(
                conn,
                "SELECT rowid, bm25(memories_fts) FROM memories_fts "
                "WHERE memories_fts MATCH ? ORDER BY rank LIMIT ?",
                (expr, n),
            )
            ranked = [(int(seq), -float(score)) for seq, score in found]
        if len(ranked) < n and self._db.has_trigram:
            tri = trigram_query(query)
            if tri is not None:
                seen = {seq for seq, _ in ranked}
                floor = min((s for _, s in ranked), default=1.0)
                found = await fetch_all(
                    conn,
                    "SELECT rowid, bm25(memories_tri) FROM memories_tri "
                    "WHERE memories_tri MATCH ? ORDER BY rank LIMIT ?",
                    (tri, n),
                )
                for seq, score in found:
                    if int(seq) not in seen and len(ranked) < n:
                        value = -float(score)
                        # below every word hit, in trigram order
                        ranked.append((int(seq), floor * value / (1.0 + value)))
        return ranked

    async def search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Full-text BM25 search. Any text is safe; exact identifiers are found.

        Each whitespace token is searched as a quoted phrase of its word parts
        (``bd-q3fy`` → ``"bd q3fy"``), OR-ed, ranked by BM25 (stemmed, Porter).
        With ``substring_search=True``, when that finds fewer than ``limit``
        entries, substring matches from the trigram index fill the rest
        (``SessionMan``, ``日本語``). ``score`` is
        the negated BM25 rank (higher is better).
        """
        check_query(query)
        check_limit(limit)
        async with self._db.read() as conn:
            ranked = await self._bm25(conn, query, limit)
            return await fetch_by_seq(conn, ranked)

    # -- vectors --------------------------------------------------------------

    async def _vector_rank(self, vector: Sequence[float], n: int) -> list[tuple[int, float]]:
        with translate_sqlite_errors("memory database", self.db_path):
            return await asyncio.to_thread(self._index.top_k, vector, n)

    async def semantic_search(
        self, embedding: Sequence[float], limit: int = 10
    ) -> list[MemoryEntry]:
        """Exact cosine top-k over every stored vector, best first; ``score`` is the cosine.

        A vector of another size than the store's, a zero vector or non-finite
        values are ValidationError('embedding').
        """
        check_limit(limit)
        ranked = await self._vector_rank(embedding, limit)
        async with self._db.read() as conn:
            return await fetch_by_seq(conn, ranked)

    async def _embed_query(self, query: str) -> list[float]:
        assert self._embedder is not None
        (vector,) = await self._embedder.embed([query])
        return vector

    async def _has_vectors(self, conn: AsyncConnection) -> bool:
        meta = await read_meta(conn, ("vector_count",))
        return int(meta.get("vector_count") or 0) > 0

    async def semantic_search_by_query(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Embed ``query`` and search by vector.

        Without an embedder, or while no entry has a vector yet, this is
        :meth:`search` (BM25).
        """
        check_query(query)
        check_limit(limit)
        if self._embedder is None or not query.strip():
            return await self.search(query, limit)
        async with self._db.read() as conn:
            if not await self._has_vectors(conn):
                ranked = await self._bm25(conn, query, limit)
                return await fetch_by_seq(conn, ranked)
        vector = await self._embed_query(query)
        return await self.semantic_search(vector, limit)

    async def hybrid_search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """BM25 and vector results fused by :func:`jetpack.shared.rules.fuse_hybrid`.

        ``score`` is the fused score: 0.8 × the min-max normalised cosine + 0.2 ×
        BM25 ÷ the best BM25, plus 1 for a decisive lexical match (the best BM25
        hit at least twice the runner-up, e.g. an exact identifier). Each list goes
        ``max(5 × limit, 50)`` deep; the two run concurrently.
        Without an embedder, with no vectors stored yet, or if embedding the
        query fails (logged), it is :meth:`search`.
        """
        check_query(query)
        check_limit(limit)
        depth = _candidates(limit)
        vector: list[float] | None = None
        if self._embedder is not None and query.strip():
            try:
                vector = await self._embed_query(query)
            except Exception as error:  # fail open to BM25
                logger.warning("hybrid_search: embedding the query failed (%s); BM25 only", error)
        if vector is None:
            async with self._db.read() as conn:
                text = await self._bm25(conn, query, limit)
                return await fetch_by_seq(conn, text)
        text, semantic = await asyncio.gather(
            self._text_rank(query, depth), self._vector_rank(vector, depth)
        )
        async with self._db.read() as conn:
            if not semantic:  # no vectors stored yet
                return await fetch_by_seq(conn, text[:limit])
            fused = fuse_hybrid(text, semantic)
            return await fetch_by_seq(conn, fused[:limit])

    async def _text_rank(self, query: str, n: int) -> list[tuple[int, float]]:
        async with self._db.read() as conn:
            return await self._bm25(conn, query, n)
