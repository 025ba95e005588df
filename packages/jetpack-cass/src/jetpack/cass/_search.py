"""The store's four searches: BM25, exact cosine, by query, and RRF hybrid."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from jetpack.cass._checks import check_limit, check_query
from jetpack.cass._db import Database
from jetpack.cass._query import trigram_query, word_query
from jetpack.cass._sql import fetch_all, fetch_by_seq, read_meta
from jetpack.cass._vectors import FloatMatrix, VectorMatrix, check_vector
from jetpack.shared import MemoryEntry
from jetpack.shared._protocols import Embedder
from jetpack.shared.rules import rrf_fuse

__all__ = ["SearchMixin"]

logger = logging.getLogger(__name__)

_THREAD_WORK = 2_000_000  # matrix cells above which the product runs in a worker thread


def _candidates(limit: int) -> int:
    """How deep each ranking goes before fusion."""
    return max(limit * 5, 50)


class SearchMixin:
    """Search methods of :class:`~jetpack.cass.CASSAdapter` (needs ``_db`` and ``_embedder``)."""

    _db: Database
    _embedder: Embedder | None
    db_path: Path

    def __init__(self) -> None:
        self._matrix: VectorMatrix | None = None
        self._matrix_lock = asyncio.Lock()
        self.matrix_loads = 0
        """How many times the vector matrix was read in full (for tests and benchmarks)."""

    def _drop_matrix(self) -> None:
        self._matrix = None

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
        if len(ranked) < n:
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
        When that finds fewer than ``limit`` entries, substring matches from the
        trigram index fill the rest (``SessionMan``, ``日本語``). ``score`` is
        the negated BM25 rank (higher is better).
        """
        check_query(query)
        check_limit(limit)
        async with self._db.read() as conn:
            ranked = await self._bm25(conn, query, limit)
            return await fetch_by_seq(conn, ranked)

    # -- vectors --------------------------------------------------------------

    async def _refreshed(self, conn: AsyncConnection) -> VectorMatrix | None:
        """The in-process matrix, brought up to the file's ``vector_epoch``."""
        meta = await read_meta(conn, ("vector_epoch", "vector_count", "dimensions"))
        dims = meta.get("dimensions")
        if dims is None:
            return None
        epoch, count = int(meta["vector_epoch"]), int(meta["vector_count"])
        matrix = self._matrix
        if matrix is None or matrix.dims != int(dims) or epoch < matrix.epoch:
            matrix = VectorMatrix(int(dims))
            self.matrix_loads += 1
        if epoch == matrix.epoch:
            return matrix
        rows = await fetch_all(
            conn,
            "SELECT seq, vector FROM memory_vectors WHERE epoch > ? AND dim = ?",
            (matrix.epoch, matrix.dims),
        )
        matrix.upsert([int(r[0]) for r in rows], [bytes(r[1]) for r in rows])
        if len(matrix) != count:
            live = await fetch_all(conn, "SELECT seq FROM memory_vectors")
            matrix.retain(np.fromiter((int(r[0]) for r in live), dtype=np.int64))
        matrix.epoch = epoch
        self._matrix = matrix
        return matrix

    async def _vector_rank(
        self, conn: AsyncConnection, vector: Sequence[float], n: int
    ) -> list[tuple[int, float]]:
        async with self._matrix_lock:
            matrix = await self._refreshed(conn)
            dims = matrix.dims if matrix is not None else None
            query: FloatMatrix = check_vector(vector, dims, "embedding")
            if matrix is None or not len(matrix):
                return []
            if len(matrix) * matrix.dims > _THREAD_WORK:
                return await asyncio.to_thread(matrix.top_k, query, n)
            return matrix.top_k(query, n)

    async def semantic_search(
        self, embedding: Sequence[float], limit: int = 10
    ) -> list[MemoryEntry]:
        """Exact cosine top-k over every stored vector, best first; ``score`` is the cosine.

        A vector of another size than the store's, a zero vector or non-finite
        values are ValidationError('embedding').
        """
        check_limit(limit)
        async with self._db.read() as conn:
            ranked = await self._vector_rank(conn, embedding, limit)
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
        """BM25 and vector ranks fused by RRF (k = 60); ``score`` is the fused score.

        Each ranking goes ``max(5 × limit, 50)`` deep. Without an embedder, with
        no vectors stored yet, or if embedding the query fails (logged), it is
        :meth:`search`.
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
        async with self._db.read() as conn:
            text = await self._bm25(conn, query, depth)
            if vector is None or not await self._has_vectors(conn):
                return await fetch_by_seq(conn, text[:limit])
            semantic = await self._vector_rank(conn, vector, depth)
            fused = rrf_fuse([[seq for seq, _ in text], [seq for seq, _ in semantic]])
            return await fetch_by_seq(conn, fused[:limit])
