"""Cloudflare (D1) task store for Jetpack: the Worker's task routes and their client.

``CloudflareTaskStore`` keeps the TaskStore contract over HTTP against the
Jetpack Worker (``jetpack edge dev`` / ``deploy``); ``EDGE_MODULE`` is this
package's part of that Worker (routes + D1 migrations, in ``worker/``).
"""

from jetpack.cf_beads.__about__ import __version__
from jetpack.cf_beads._edge import EDGE_MODULE
from jetpack.cf_beads._store import CloudflareTaskStore

__all__ = ["EDGE_MODULE", "CloudflareTaskStore", "__version__"]
