"""Read jobs: plain functions of a ``sqlite3`` connection, each run in one snapshot.

The store runs them with ``await db.read(job, ...)`` on a reader thread; the
SQL is that of :mod:`~jetpack.cass._sql`. A search ranks and fetches its
entries in the same snapshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from jetpack.cass import _sql
from jetpack.cass._index import VectorIndex
from jetpack.cass._query import trigram_query, word_query
from jetpack.cass._rows import row_to_entry
from jetpack.cass._vectors import FloatMatrix
from jetpack.shared import MemoryEntry, MemoryStats, MemoryType

__all__ = [
    "entries",
    "entries_by_seq",
    "has_vectors",
    "meta",
    "missing_embeddings",
    "page",
    "semantic",
    "stats",
    "text",
    "text_rank",
]

Ranked = list[tuple[int, float]]
"""``(seq, score)`` pairs, best first."""

_IN_CHUNK = 500


def meta(conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, Any]:
    """Values of ``cass_meta`` rows."""
    wanted = list(keys)
    rows = conn.execute(
        f"SELECT key, value FROM cass_meta WHERE key IN ({_sql.marks(len(wanted))})", wanted
    )
    return {str(k): v for k, v in rows}


def has_vectors(conn: sqlite3.Connection) -> bool:
    """Whether any entry has a vector yet."""
    return int(meta(conn, ("vector_count",)).get("vector_count") or 0) > 0


def entries_by_seq(
    conn: sqlite3.Connection, ranked: Sequence[tuple[int, float]]
) -> list[MemoryEntry]:
    """Entries for ``(seq, score)`` pairs, in the given order; vanished rows are skipped."""
    rows: dict[int, Sequence[Any]] = {}
    seqs = [seq for seq, _ in ranked]
    for start in range(0, len(seqs), _IN_CHUNK):
        chunk = seqs[start : start + _IN_CHUNK]
        found = conn.execute(
            f"SELECT {_sql.ENTRY_COLUMNS} FROM {_sql.FROM_ENTRIES} "
            f"WHERE m.seq IN ({_sql.marks(len(chunk))})",
            chunk,
        )
        rows.update({int(r[0]): r for r in found})
    return [row_to_entry(rows[seq], score) for seq, score in ranked if seq in rows]


def entries(
    conn: sqlite3.Connection, where: str, order: str, params: Sequence[Any]
) -> list[MemoryEntry]:
    """Entries matching ``where``, in ``order``; the last parameter is the limit."""
    return [row_to_entry(r) for r in conn.execute(_sql.entries_where(where, order), params)]


def page(
    conn: sqlite3.Connection, before: int | None, kind: str | None, limit: int
) -> tuple[list[MemoryEntry], int | None]:
    """Up to ``limit`` entries below seq ``before``, newest first; the seq to resume from.

    The resume seq is None on the last page.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if before is not None:
        clauses.append("m.seq < ?")
        params.append(before)
    if kind is not None:
        clauses.append("m.type = ?")
        params.append(kind)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(_sql.entries_where(where, "m.seq DESC"), (*params, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return [row_to_entry(r) for r in rows], int(rows[-1][0]) if more else None


def text_rank(conn: sqlite3.Connection, query: str, n: int, trigram: bool) -> Ranked:
    """BM25 over words, then (``trigram``) substring hits to fill ``n``."""
    ranked: Ranked = []
    expr = word_query(query)
    if expr is not None:
        found = conn.execute(_sql.FTS_SEARCH, (expr, n))
        ranked = [(int(seq), -float(score)) for seq, score in found]
    if len(ranked) < n and trigram:
        tri = trigram_query(query)
        if tri is not None:
            seen = {seq for seq, _ in ranked}
            floor = min((s for _, s in ranked), default=1.0)
            for seq, score in conn.execute(_sql.TRIGRAM_SEARCH, (tri, n)):
                if int(seq) not in seen and len(ranked) < n:
                    value = -float(score)
                    # below every word hit, in trigram order
                    ranked.append((int(seq), floor * value / (1.0 + value)))
    return ranked


def text(conn: sqlite3.Connection, query: str, limit: int, trigram: bool) -> list[MemoryEntry]:
    """The entries of :func:`text_rank`, scored."""
    return entries_by_seq(conn, text_rank(conn, query, limit, trigram))


def semantic(
    conn: sqlite3.Connection, index: VectorIndex, vector: Sequence[float] | FloatMatrix, k: int
) -> list[MemoryEntry]:
    """The ``k`` entries nearest ``vector`` by cosine, scored."""
    return entries_by_seq(conn, index.top_k(conn, vector, k))


def stats(conn: sqlite3.Connection, embedding_model: str | None) -> MemoryStats:
    """Counts, mean importance, accesses, embedding coverage."""
    by_type = {MemoryType(t): int(n) for t, n in conn.execute(_sql.COUNT_BY_TYPE)}
    total, avg, accesses, with_vec = conn.execute(_sql.TOTALS).fetchone()
    return MemoryStats(
        total=int(total),
        by_type=by_type,
        avg_importance=float(avg),
        total_accesses=int(accesses),
        with_embedding=int(with_vec),
        without_embedding=int(total) - int(with_vec),
        embedding_model=embedding_model,
        embedding_dimensions=meta(conn, ("dimensions",)).get("dimensions"),
    )


def missing_embeddings(conn: sqlite3.Connection, limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` entries without a vector, oldest first: ``(seq, content)``."""
    return [
        (int(seq), str(content)) for seq, content in conn.execute(_sql.MISSING_EMBEDDINGS, (limit,))
    ]
