"""Local mail bus and file leases for Jetpack, safe across processes.

:class:`MCPMailAdapter` implements :class:`jetpack.shared.MailBus` on one SQLite
file (WAL) under ``mail_dir``; open buses wake each other with Unix datagrams::

    async with MCPMailAdapter("agent-1", ".mail") as bus:
        bus.subscribe("task.created", on_task)
        await bus.publish("task.created", {"task_id": "bd-1"})
        if await bus.acquire_lease("src/auth/**", ttl_ms=120_000):
            ...
"""

from jetpack.mcp_mail.__about__ import __version__
from jetpack.mcp_mail._checks import MAX_LEASE_TTL_MS
from jetpack.mcp_mail._options import DEFAULT_RETENTION_MS, Options
from jetpack.mcp_mail._schema import SCHEMA_VERSION
from jetpack.mcp_mail._store import DB_FILENAME, MCPMailAdapter
from jetpack.shared.delivery import DeadLetter

__all__ = [
    "DB_FILENAME",
    "DEFAULT_RETENTION_MS",
    "MAX_LEASE_TTL_MS",
    "SCHEMA_VERSION",
    "DeadLetter",
    "MCPMailAdapter",
    "Options",
    "__version__",
]
