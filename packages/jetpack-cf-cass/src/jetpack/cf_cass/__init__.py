"""Cloudflare memory store for Jetpack: the Worker's memory routes and their client.

``CloudflareMemoryStore`` keeps the MemoryStore contract over HTTP against the
Jetpack Worker (``jetpack edge dev`` / ``deploy``); ``EDGE_MODULE`` is this
package's part of that Worker (routes and the per-project memory object, in
``worker/``).
"""

from jetpack.cf_cass.__about__ import __version__
from jetpack.cf_cass._edge import EDGE_MODULE
from jetpack.cf_cass._store import CloudflareMemoryStore

__all__ = ["EDGE_MODULE", "CloudflareMemoryStore", "__version__"]
