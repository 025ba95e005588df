"""Local task store for Jetpack: SQLite, atomic claims, dependencies, beads JSONL interop.

::

    from jetpack.beads import BeadsAdapter

    async with BeadsAdapter(".beads/beads.db") as tasks:
        await tasks.create_task({"title": "Write the parser", "priority": "high"})
        task = await tasks.claim_next("agent-1", skills=["python"])
"""

from jetpack.beads.__about__ import __version__
from jetpack.beads._schema import SCHEMA_VERSION
from jetpack.beads._store import BeadsAdapter

__all__ = ["SCHEMA_VERSION", "BeadsAdapter", "__version__"]
