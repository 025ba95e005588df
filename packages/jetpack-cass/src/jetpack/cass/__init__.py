"""Local memory store for Jetpack: SQLite FTS5 + vector search, fused by score.

::

    from jetpack.cass import CASSAdapter

    async with CASSAdapter(".cass/memories.db") as memory:
        await memory.store({"type": "agent_learning", "content": "Use WAL for SQLite"})
        hits = await memory.hybrid_search("sqlite journal mode")

Embedders live in :mod:`jetpack.shared.embedders` (shared with jetpack-cf-cass).
"""

from jetpack.cass.__about__ import __version__
from jetpack.cass._schema import SCHEMA_VERSION
from jetpack.cass._store import CASSAdapter
from jetpack.shared import CALLER_MODEL

__all__ = ["CALLER_MODEL", "SCHEMA_VERSION", "CASSAdapter", "__version__"]
