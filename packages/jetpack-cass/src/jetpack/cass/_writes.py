"""Write jobs: each a plain function of the writer thread's ``sqlite3`` connection.

The store runs each with ``await db.write(job, ...)``: one ``BEGIN IMMEDIATE``
transaction under the ``memories.db.lock`` file lock
(:class:`jetpack.shared.sqlite.Database`), committed when the job returns,
rolled back when it raises. Texts are embedded before the job (a model call
never holds the write lock); the job checks ids and dimensions, inserts, indexes
and evicts in the one transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Sequence

from jetpack.cass import _sql
from jetpack.cass._reads import meta
from jetpack.cass._rows import dumps, row_to_entry
from jetpack.cass._vectors import FloatMatrix, to_blob
from jetpack.shared import CALLER_MODEL, MemoryEntry, MemoryInput, from_ms, utcnow
from jetpack.shared.errors import ConflictError, NotFoundError, ValidationError
from jetpack.shared.rules import new_memory_id, retention_score

__all__ = [
    "adaptive_compact",
    "adopt_space",
    "compact",
    "delete",
    "retrieve",
    "store_entries",
    "store_vectors",
    "update_importance",
]

logger = logging.getLogger(__name__)

_IN_CHUNK = 500

VectorRow = tuple[int, str, FloatMatrix]
"""``(seq, model name, vector)``."""


# -- storing --------------------------------------------------------------------------


def store_entries(
    conn: sqlite3.Connection,
    inputs: Sequence[MemoryInput],
    vectors: Sequence[FloatMatrix | None],
    models: Sequence[str | None],
    now_ms: int,
    *,
    trigram: bool,
    max_entries: int,
    protected: Collection[str],
) -> list[str]:
    """Insert validated entries (all or none); evict down to 95 % of ``max_entries`` on overflow.

    Eviction never takes the last entry of this call and takes older entries
    before this call's (see :func:`_trim`).
    """
    dims = meta(conn, ("dimensions",)).get("dimensions")
    known_dims = dims
    for vector in vectors:
        if vector is not None:
            dims = dims or vector.size
            if vector.size != dims:
                raise ValidationError(
                    "embedding", f"has {vector.size} dimensions; this store uses {dims}"
                )
    ids = _assign_ids(conn, inputs)
    seq0 = int(conn.execute(_sql.MAX_SEQ).fetchone()[0]) + 1
    rows = [
        (
            memory_id,
            item.type.value,
            item.content,
            item.importance,
            dumps(item.metadata),
            int(vectors[i] is not None),
            now_ms,
            now_ms,
            seq0 + i,
        )
        for i, (memory_id, item) in enumerate(zip(ids, inputs, strict=True))
    ]
    conn.executemany(_sql.INSERT_MEMORY, rows)
    conn.execute(_sql.INDEX_NEW_FTS, (seq0,))
    if trigram:
        conn.execute(_sql.INDEX_NEW_TRIGRAM, (seq0,))
    conn.execute(_sql.ADD_MEMORY_COUNT, (len(rows),))
    fresh = [
        (seq0 + i, models[i] or CALLER_MODEL, v) for i, v in enumerate(vectors) if v is not None
    ]
    if fresh:
        _write_vectors(conn, fresh, mark=False)
        if known_dims is None:
            conn.execute(_sql.SET_DIMENSIONS, (dims,))
    if int(meta(conn, ("memory_count",))["memory_count"]) > max_entries:
        low_water = max_entries - max_entries // 20
        batch = range(seq0, seq0 + len(rows))
        _trim(conn, low_water, protected, newest=batch[-1], batch=batch)
    return ids


def _assign_ids(conn: sqlite3.Connection, inputs: Sequence[MemoryInput]) -> list[str]:
    """Given ids must be new (ConflictError); generated ids are drawn again on a clash."""
    ids = [item.id or new_memory_id() for item in inputs]
    explicit = {item.id for item in inputs if item.id}
    while True:
        seen: set[str] = set()
        for memory_id in ids:
            if memory_id in seen and memory_id in explicit:
                raise ConflictError(f"memory {memory_id!r} appears twice in one batch")
            seen.add(memory_id)
        taken: set[str] = set()
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            found = conn.execute(
                f"SELECT id FROM memories WHERE id IN ({_sql.marks(len(chunk))})", chunk
            )
            taken.update(str(r[0]) for r in found)
        if taken & explicit:
            raise ConflictError(f"memory {sorted(taken & explicit)[0]!r} already exists")
        if len(seen) == len(ids) and not taken:
            return ids
        used: set[str] = set()
        for i, memory_id in enumerate(ids):  # a generated id collided: draw again
            if (memory_id in taken or memory_id in used) and memory_id not in explicit:
                ids[i] = new_memory_id()
            used.add(ids[i])


def _write_vectors(conn: sqlite3.Connection, rows: Sequence[VectorRow], *, mark: bool) -> None:
    """Insert vectors for seqs that have none, stamped with a new ``vector_epoch``.

    Keeps ``vector_count``; ``mark`` sets ``has_embedding`` (a new row sets it
    in its insert instead).
    """
    epoch = int(conn.execute(_sql.BUMP_VECTOR_EPOCH).fetchone()[0])
    conn.executemany(
        _sql.INSERT_VECTOR, [(seq, model, int(v.size), to_blob(v), epoch) for seq, model, v in rows]
    )
    conn.execute(_sql.ADD_VECTOR_COUNT, (len(rows),))
    if mark:
        conn.executemany(_sql.MARK_EMBEDDED, [(seq,) for seq, _, _ in rows])


def store_vectors(conn: sqlite3.Connection, rows: Sequence[VectorRow]) -> None:
    """Replace the vectors of the entries in ``rows`` that still exist (backfill)."""
    seqs = [seq for seq, _, _ in rows]
    live = {
        int(r[0])
        for r in conn.execute(
            f"SELECT seq FROM memories WHERE seq IN ({_sql.marks(len(seqs))})", seqs
        )
    }
    kept = [row for row in rows if row[0] in live]
    if kept:
        stale = [seq for seq, _, _ in kept]
        conn.execute(f"DELETE FROM memory_vectors WHERE seq IN ({_sql.marks(len(stale))})", stale)
        _write_vectors(conn, kept, mark=True)


# -- single entries ---------------------------------------------------------------------


def retrieve(conn: sqlite3.Connection, memory_id: str, now_ms: int) -> MemoryEntry | None:
    """The entry after bumping ``access_count`` and ``last_accessed``; None if unknown."""
    row = conn.execute(_sql.BUMP_ACCESS, (now_ms, memory_id)).fetchone()
    if row is None:
        return None
    found = conn.execute(_sql.entries_where("WHERE m.seq = ?"), (row[0], 1)).fetchone()
    return row_to_entry(found)


def delete(conn: sqlite3.Connection, memory_id: str) -> bool:
    """Delete one entry (triggers keep the indexes, vectors and counts); False if unknown."""
    return conn.execute(_sql.DELETE_MEMORY, (memory_id,)).rowcount > 0


def update_importance(conn: sqlite3.Connection, memory_id: str, importance: float) -> None:
    """Set an entry's importance; NotFoundError for an unknown id."""
    if not conn.execute(_sql.SET_IMPORTANCE, (importance, memory_id)).rowcount:
        raise NotFoundError("memory", memory_id)


# -- maintenance ------------------------------------------------------------------------


def adopt_space(conn: sqlite3.Connection, model: str, dims: int, path: object) -> None:
    """Make ``model``'s vector space the store's one space; drop the vectors of any other.

    Vectors made by another model (or, when no model was recorded, of another
    size) cannot be compared with the new model's; ``backfill_embeddings``
    re-embeds those entries.
    """
    current = meta(conn, ("dimensions", "embedding_model"))
    old_dims, old_model = current.get("dimensions"), current.get("embedding_model")
    params: tuple[object, ...]
    if old_model is not None and old_model != model:
        where, params = "model != ?", (model,)
    else:
        where, params = "dim != ?", (dims,)
    dropped = conn.execute(f"DELETE FROM memory_vectors WHERE {where}", params).rowcount
    if dropped:
        logger.warning(
            "%s: dropped %d vectors of %s (%s dims) for %s (%d dims); "
            "backfill_embeddings() re-embeds them",
            path,
            dropped,
            old_model or CALLER_MODEL,
            old_dims,
            model,
            dims,
        )
    conn.execute(_sql.SET_SPACE, (dims, model))


def compact(conn: sqlite3.Connection, threshold: float, protected: Collection[str]) -> int:
    """Delete entries with importance below ``threshold`` except protected types."""
    kinds = sorted(protected)
    keep = f" AND type NOT IN ({_sql.marks(len(kinds))})" if kinds else ""
    return conn.execute(
        f"DELETE FROM memories WHERE importance < ?{keep}", (threshold, *kinds)
    ).rowcount


def adaptive_compact(conn: sqlite3.Connection, target: int, protected: Collection[str]) -> int:
    """Evict down to ``target`` entries by retention score; never the newest entry."""
    newest = conn.execute("SELECT max(seq) FROM memories").fetchone()[0]
    return _trim(conn, target, protected, newest=int(newest or 0))


def _trim(
    conn: sqlite3.Connection,
    target: int,
    protected: Collection[str],
    *,
    newest: int,
    batch: range | None = None,
) -> int:
    """Delete the lowest-ranked entries down to ``target``; never ``newest``.

    Order of eviction: unprotected before protected types, then entries outside
    ``batch`` (the call that overflowed) before entries in it, then lowest
    retention score (``rules.retention_score``), then oldest.
    """
    rows = conn.execute(_sql.RANKING_COLUMNS).fetchall()
    excess = len(rows) - target
    if excess <= 0:
        return 0
    now = utcnow()
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
        conn.execute(f"DELETE FROM memories WHERE seq IN ({_sql.marks(len(chunk))})", chunk)
    if doomed:
        logger.info("evicted %d memories over max_entries", len(doomed))
    return len(doomed)
