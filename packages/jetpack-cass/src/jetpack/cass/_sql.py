"""SQL statements of the memory store, as plain strings with ``?`` parameters.

Times are epoch milliseconds, metadata is JSON text, vectors are float32 BLOBs.
The jobs of :mod:`~jetpack.cass._reads` and :mod:`~jetpack.cass._writes` run
them; the entry columns match :func:`~jetpack.cass._rows.row_to_entry`.
"""

from __future__ import annotations

__all__ = [
    "ADD_MEMORY_COUNT",
    "ADD_VECTOR_COUNT",
    "BUMP_ACCESS",
    "BUMP_VECTOR_EPOCH",
    "COUNT_BY_TYPE",
    "DELETE_MEMORY",
    "ENTRY_COLUMNS",
    "FROM_ENTRIES",
    "FTS_SEARCH",
    "INDEX_NEW_FTS",
    "INDEX_NEW_TRIGRAM",
    "INSERT_MEMORY",
    "INSERT_VECTOR",
    "MARK_EMBEDDED",
    "MAX_SEQ",
    "MISSING_EMBEDDINGS",
    "RANKING_COLUMNS",
    "SET_DIMENSIONS",
    "SET_IMPORTANCE",
    "SET_SPACE",
    "TOTALS",
    "TRIGRAM_SEARCH",
    "entries_where",
    "marks",
]

ENTRY_COLUMNS = (
    "m.seq, m.id, m.type, m.content, m.importance, m.metadata, m.has_embedding, v.model, "
    "m.created_at, m.last_accessed, m.access_count, m.version"
)
"""Columns :func:`~jetpack.cass._rows.row_to_entry` reads, from :data:`FROM_ENTRIES`."""

FROM_ENTRIES = "memories m LEFT JOIN memory_vectors v ON v.seq = m.seq"


def marks(count: int) -> str:
    """``?, ?, …`` for an ``IN`` list of ``count`` values."""
    return ", ".join("?" * count)


def entries_where(where: str, order: str = "m.seq") -> str:
    """Entries matching ``where`` (a clause on ``m``, may be empty), ordered, with ``LIMIT ?``."""
    return f"SELECT {ENTRY_COLUMNS} FROM {FROM_ENTRIES} {where} ORDER BY {order} LIMIT ?"


# -- memories ---------------------------------------------------------------------------

INSERT_MEMORY = (
    "INSERT INTO memories (id, type, content, importance, metadata, has_embedding, "
    "created_at, last_accessed, access_count, seq, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 1)"
)
MAX_SEQ = "SELECT coalesce(max(seq), 0) FROM memories"
INDEX_NEW_FTS = (
    "INSERT INTO memories_fts(rowid, content) SELECT seq, content FROM memories WHERE seq >= ?"
)
"""Index the rows inserted from a seq on, in one statement (a per-row trigger is 3.5× slower)."""
INDEX_NEW_TRIGRAM = (
    "INSERT INTO memories_tri(rowid, content) SELECT seq, content FROM memories WHERE seq >= ?"
)
ADD_MEMORY_COUNT = "UPDATE cass_meta SET value = value + ? WHERE key = 'memory_count'"
BUMP_ACCESS = (
    "UPDATE memories SET access_count = coalesce(access_count, 0) + 1, "
    "last_accessed = ?, version = version + 1 WHERE id = ? RETURNING seq"
)
SET_IMPORTANCE = "UPDATE memories SET importance = ?, version = version + 1 WHERE id = ?"
DELETE_MEMORY = "DELETE FROM memories WHERE id = ?"
RANKING_COLUMNS = "SELECT seq, type, importance, last_accessed, access_count FROM memories"
"""What eviction ranks by (``rules.retention_score``)."""
COUNT_BY_TYPE = "SELECT type, count(*) FROM memories GROUP BY type"
TOTALS = (
    "SELECT count(*), coalesce(avg(importance), 0), "
    "coalesce(sum(access_count), 0), coalesce(sum(has_embedding), 0) FROM memories"
)

# -- search -----------------------------------------------------------------------------

FTS_SEARCH = (
    "SELECT rowid, bm25(memories_fts) FROM memories_fts "
    "WHERE memories_fts MATCH ? ORDER BY rank LIMIT ?"
)
TRIGRAM_SEARCH = (
    "SELECT rowid, bm25(memories_tri) FROM memories_tri "
    "WHERE memories_tri MATCH ? ORDER BY rank LIMIT ?"
)

# -- vectors ----------------------------------------------------------------------------

INSERT_VECTOR = "INSERT INTO memory_vectors (seq, model, dim, vector, epoch) VALUES (?, ?, ?, ?, ?)"
BUMP_VECTOR_EPOCH = (
    "UPDATE cass_meta SET value = value + 1 WHERE key = 'vector_epoch' RETURNING value"
)
ADD_VECTOR_COUNT = "UPDATE cass_meta SET value = value + ? WHERE key = 'vector_count'"
MARK_EMBEDDED = "UPDATE memories SET has_embedding = 1 WHERE seq = ?"
MISSING_EMBEDDINGS = (
    "SELECT seq, content FROM memories WHERE coalesce(has_embedding, 0) = 0 ORDER BY seq LIMIT ?"
)
SET_DIMENSIONS = "UPDATE cass_meta SET value = ? WHERE key = 'dimensions'"
SET_SPACE = (
    "UPDATE cass_meta SET value = CASE key WHEN 'dimensions' THEN ? ELSE ? END "
    "WHERE key IN ('dimensions', 'embedding_model')"
)
"""Record the store's one vector space: its dimensions and model name."""
