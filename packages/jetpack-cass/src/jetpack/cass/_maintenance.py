"""Compaction, eviction, embedding backfill and the switch between vector spaces."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from jetpack.cass._checks import check_limit, check_unit
from jetpack.cass._db import Database
from jetpack.cass._sql import fetch_all, read_meta, scalar, write_vectors
from jetpack.cass._vectors import check_vector
from jetpack.shared import CALLER_MODEL, Embedder, MemoryType, from_ms, utcnow
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import retention_score

__all__ = ["CALLER_MODEL", "MaintenanceMixin"]

logger = logging.getLogger(__name__)


_IN_CHUNK = 500


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


class MaintenanceMixin:
    """Maintenance methods of :class:`~jetpack.cass.CASSAdapter`."""

    _db: Database
    _embedder: Embedder | None
    db_path: Path
    max_entries: int
    protected_types: frozenset[MemoryType]

    async def _adopt_embedder(self, embedder: Embedder) -> None:
        """Make the embedder's vector space the store's one space.

        Vectors made by another model (or, when no model was recorded, of
        another size) are deleted, with a warning: they cannot be compared with
        the new model's. :meth:`backfill_embeddings` re-embeds those entries.
        """
        async with self._db.read() as conn:
            meta = await read_meta(conn, ("dimensions", "embedding_model"))
        dims, model = meta.get("dimensions"), meta.get("embedding_model")
        if dims == embedder.dimensions and model == embedder.name:
            return
        async with self._db.write() as conn:
            params: tuple[object, ...]
            if model is not None and model != embedder.name:
                where, params = "model != ?", (embedder.name,)
            else:
                where, params = "dim != ?", (embedder.dimensions,)
            dropped = await conn.exec_driver_sql(
                f"DELETE FROM memory_vectors WHERE {where}", params
            )
            if dropped.rowcount:
                logger.warning(
                    "%s: dropped %d vectors of %s (%s dims) for %s (%d dims); "
                    "backfill_embeddings() re-embeds them",
                    self.db_path,
                    dropped.rowcount,
                    model or CALLER_MODEL,
                    dims,
                    embedder.name,
                    embedder.dimensions,
                )
            await conn.exec_driver_sql(
                "UPDATE cass_meta SET value = CASE key WHEN 'dimensions' THEN ? ELSE ? END "
                "WHERE key IN ('dimensions', 'embedding_model')",
                (embedder.dimensions, embedder.name),
            )

    async def compact(self, threshold: float) -> int:
        """Delete entries with importance below ``threshold`` except protected types."""
        value = check_unit(threshold, "threshold")
        protected = sorted(t.value for t in self.protected_types)
        keep = f" AND type NOT IN ({_marks(protected)})" if protected else ""
        async with self._db.write() as conn:
            result = await conn.exec_driver_sql(
                f"DELETE FROM memories WHERE importance < ?{keep}", (value, *protected)
            )
            return int(result.rowcount)

    async def adaptive_compact(self) -> int:
        """Trim to ``max_entries`` by lowest retention score; never the newest entry.

        The score is :func:`jetpack.shared.rules.retention_score`: 0.6 × importance
        + 0.25 × recency of the last access (half-life 14 days) + 0.15 × use
        (log of the access count, full at 20). Unprotected entries go first,
        lowest score first (older first on ties); protected types only when they
        alone overflow the cap. Returns how many were deleted.
        """
        async with self._db.write() as conn:
            newest = await scalar(conn, "SELECT max(seq) FROM memories")
            return await self._trim(conn, self.max_entries, newest=int(newest or 0))

    async def _trim(
        self, conn: AsyncConnection, target: int, *, newest: int, batch: range | None = None
    ) -> int:
        """Delete the lowest-ranked entries down to ``target``; never ``newest``.

        Order of eviction: unprotected before protected types, then entries
        outside ``batch`` (the call that overflowed) before entries in it, then
        lowest retention score, then oldest.
        """
        rows = await fetch_all(
            conn, "SELECT seq, type, importance, last_accessed, access_count FROM memories"
        )
        excess = len(rows) - target
        if excess <= 0:
            return 0
        now = utcnow()
        protected = {t.value for t in self.protected_types}
        fresh = batch if batch is not None else range(0)
        ranked = sorted(
            (
                row[1] in protected,
                int(row[0]) in fresh,
                retention_score(float(row[2]), from_ms(int(row[3])), int(row[4] or 0), now),
                int(row[0]),
            )
            for row in rows
            if int(row[0]) != newest
        )
        doomed = [seq for _, _, _, seq in ranked[:excess]]
        for start in range(0, len(doomed), _IN_CHUNK):
            chunk = doomed[start : start + _IN_CHUNK]
            await conn.exec_driver_sql(
                f"DELETE FROM memories WHERE seq IN ({_marks(chunk)})", tuple(chunk)
            )
        if doomed:
            logger.info("%s: evicted %d memories over max_entries", self.db_path, len(doomed))
        return len(doomed)

    async def backfill_embeddings(self, batch_size: int = 32) -> int:
        """Embed up to ``batch_size`` entries lacking vectors, oldest first; return how many.

        Resumable: each call embeds one batch and commits it; call until it
        returns 0. Without an embedder it returns 0. An embedder failure raises
        and leaves the rows for the next call.
        """
        check_limit(batch_size, "batch_size")
        embedder = self._embedder
        if embedder is None:
            return 0
        async with self._db.read() as conn:
            todo = await fetch_all(
                conn,
                "SELECT seq, content FROM memories WHERE coalesce(has_embedding, 0) = 0 "
                "ORDER BY seq LIMIT ?",
                (batch_size,),
            )
        if not todo:
            return 0
        made = await embedder.embed([str(r[1]) for r in todo])
        if len(made) != len(todo):
            raise ValidationError("embedding", "the embedder returned a wrong number of vectors")
        vectors = [check_vector(v, embedder.dimensions, "embedding") for v in made]
        async with self._db.write() as conn:
            seqs = tuple(int(r[0]) for r in todo)
            live = {
                int(r[0])
                for r in await fetch_all(
                    conn, f"SELECT seq FROM memories WHERE seq IN ({_marks(seqs)})", seqs
                )
            }
            rows = [
                (seq, embedder.name, v) for seq, v in zip(seqs, vectors, strict=True) if seq in live
            ]
            if rows:
                stale = tuple(seq for seq, _, _ in rows)
                await conn.exec_driver_sql(
                    f"DELETE FROM memory_vectors WHERE seq IN ({_marks(stale)})", stale
                )
                await write_vectors(conn, rows)
        return len(todo)
