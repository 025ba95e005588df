"""Cloudflare (Durable Objects) mail bus and leases for Jetpack.

:class:`CloudflareMailBus` implements :class:`jetpack.shared.MailBus` on the
Jetpack Worker: one MailboxDO and one LeaseDO per project, reached over a
WebSocket (messages) and HTTP (leases, inbox, presence)::

    async with CloudflareMailBus("agent-1", worker_url, token) as bus:
        bus.subscribe("task.created", on_task)
        await bus.publish("task.created", {"task_id": "bd-1"})
        if await bus.acquire_lease("src/auth/**", ttl_ms=120_000):
            ...

``EDGE_MODULE`` is the Worker module (routes and Durable Objects) that
``jetpack edge build`` composes in.
"""

from jetpack.cf_mail.__about__ import __version__
from jetpack.cf_mail._edge import EDGE_MODULE, RETENTION_FEATURE
from jetpack.cf_mail._options import Options
from jetpack.cf_mail._store import CloudflareMailBus
from jetpack.shared.delivery import DeadLetter

__all__ = [
    "EDGE_MODULE",
    "RETENTION_FEATURE",
    "CloudflareMailBus",
    "DeadLetter",
    "Options",
    "__version__",
]
