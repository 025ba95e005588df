"""SQL text and row mapping shared by the store's methods."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncConnection

from jetpack.cass._vectors import to_blob
from jetpack.shared import MemoryEntry, from_ms
from jetpack.shared.errors import JetpackError

__all__ = [
    "ENTRY_COLUMNS",
    "FROM_ENTRIES",
    "INSERT_MEMORY",
    "INSERT_VECTOR",
    "fetch_all",
    "fetch_by_seq",
    "read_meta",
    "row_to_entry",
    "scalar",
    "write_vectors",
]

Row = tuple[Any, ...]

ENTRY_COLUMNS = (
    "m.seq, m.id, m.type, m.content, m.importance, m.metadata, m.has_embedding, v.model, "
    "m.created_at, m.last_accessed, m.access_count, m.version"
)
"""Columns :func:`row_to_entry` reads, from ``memories m LEFT JOIN memory_vectors v``."""

FROM_ENTRIES = "memories m LEFT JOIN memory_vectors v ON v.seq = m.seq"

INSERT_MEMORY = (
    "INSERT INTO memories (id, type, content, importance, metadata, has_embedding, "
    "created_at, last_accessed, access_count, seq, version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 1)"
)

INSERT_VECTOR = "INSERT INTO memory_vectors (seq, model, dim, vector, epoch) VALUES (?, ?, ?, ?, ?)"

_IN_CHUNK = 500


def row_to_entry(row: Sequence[Any], score: float | None = None) -> MemoryEntry:
    """Build a validated entry from a row of :data:`ENTRY_COLUMNS`."""
    try:
        metadata = json.loads(row[5]) if row[5] else {}
    except ValueError as error:
        raise JetpackError(f"memory {row[1]!r} holds metadata that is not JSON") from error
    return MemoryEntry.model_validate(
        {
            "id": row[1],
            "type": row[2],
            "content": row[3],
            "importance": row[4],
            "metadata": metadata,
            "has_embedding": bool(row[6]),
            "embedding_model": row[7] if row[6] else None,
            "created_at": from_ms(row[8]),
            "last_accessed": from_ms(row[9]),
            "access_count": row[10] or 0,
            "version": row[11],
            "score": score,
        }
    )


async def fetch_by_seq(
    conn: AsyncConnection, ranked: Sequence[tuple[int, float]]
) -> list[MemoryEntry]:
    """Entries for ``(seq, score)`` pairs, in the given order; vanished rows are skipped."""
    if not ranked:
        return []
    rows: dict[int, Sequence[Any]] = {}
    seqs = [seq for seq, _ in ranked]
    for start in range(0, len(seqs), _IN_CHUNK):
        chunk = seqs[start : start + _IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        found = await fetch_all(
            conn,
            f"SELECT {ENTRY_COLUMNS} FROM {FROM_ENTRIES} WHERE m.seq IN ({marks})",
            tuple(chunk),
        )
        rows.update({int(r[0]): r for r in found})
    return [row_to_entry(rows[seq], score) for seq, score in ranked if seq in rows]


async def read_meta(conn: AsyncConnection, keys: Iterable[str]) -> dict[str, Any]:
    """Values of ``cass_meta`` rows."""
    wanted = list(keys)
    marks = ", ".join("?" * len(wanted))
    found = await fetch_all(
        conn, f"SELECT key, value FROM cass_meta WHERE key IN ({marks})", tuple(wanted)
    )
    return {str(k): v for k, v in found}


async def fetch_all(conn: AsyncConnection, sql: str, params: Any = ()) -> list[Row]:
    """All rows of a qmark-style statement, as plain tuples."""
    result = await conn.exec_driver_sql(sql, params)
    return [tuple(r) for r in result]


async def scalar(conn: AsyncConnection, sql: str, params: Any = ()) -> Any:
    """The first column of the first row, or None."""
    result = await conn.exec_driver_sql(sql, params)
    row = result.first()
    return None if row is None else next(iter(row))


async def write_vectors(
    conn: AsyncConnection,
    rows: Sequence[tuple[int, str, npt.NDArray[np.float32]]],
    *,
    mark: bool = True,
) -> None:
    """Insert vectors for seqs that have none, stamped with a new ``vector_epoch``.

    Keeps ``vector_count``; ``mark`` sets ``has_embedding`` (store sets it in the
    row insert instead).
    """
    epoch = int(
        await scalar(
            conn,
            "UPDATE cass_meta SET value = value + 1 WHERE key = 'vector_epoch' RETURNING value",
        )
    )
    await conn.exec_driver_sql(
        INSERT_VECTOR, [(seq, model, int(v.size), to_blob(v), epoch) for seq, model, v in rows]
    )
    await conn.exec_driver_sql(
        "UPDATE cass_meta SET value = value + ? WHERE key = 'vector_count'", (len(rows),)
    )
    if mark:
        await conn.exec_driver_sql(
            "UPDATE memories SET has_embedding = 1 WHERE seq = ?", [(seq,) for seq, _, _ in rows]
        )
