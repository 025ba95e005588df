"""Rows → models: a memory entry from a row of :data:`~jetpack.cass._sql.ENTRY_COLUMNS`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jetpack.shared import MemoryEntry, from_ms
from jetpack.shared.errors import JetpackError

__all__ = ["dumps", "row_to_entry"]


def dumps(value: Any) -> str:
    """Compact JSON, as stored."""
    return json.dumps(value, separators=(",", ":"))


def row_to_entry(row: Sequence[Any], score: float | None = None) -> MemoryEntry:
    """Build a validated entry from a row of :data:`~jetpack.cass._sql.ENTRY_COLUMNS`."""
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
