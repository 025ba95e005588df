"""Build, run and talk to the Jetpack Worker (the server of the edge backends).

- :func:`ensure_toolchain`: the pinned npm toolchain (wrangler, workerd,
  TypeScript, Hono, zod; Node 22 from npm where needed), installed once per
  lockfile into a user cache.
- :func:`build_worker`: a Worker folder from the gateway and every installed
  ``jetpack.edge`` module (:class:`EdgeModule`); :func:`check_types` runs tsc.
- :class:`DevServer`: that Worker on workerd (``wrangler dev``), on loopback.
- :mod:`jetpack.shared.edge.client`: the HTTP client layer of the cf stores
  (needs ``pip install "jetpack-shared[edge]"``, which adds httpx).

Importing this package needs only the standard library.
"""

from jetpack.shared.edge._build import (
    BuildOptions,
    WorkerBuild,
    build_worker,
    check_types,
    wrangler_config,
)
from jetpack.shared.edge._dev import (
    ADMIN_TOKEN_ENV,
    DevServer,
    apply_migrations,
    free_port,
    local_admin_token,
)
from jetpack.shared.edge._modules import (
    ENTRY_POINT_GROUP,
    DurableObjectBinding,
    EdgeModule,
    VectorizeBinding,
    discover_modules,
)
from jetpack.shared.edge._toolchain import (
    MIN_NODE,
    Progress,
    Toolchain,
    ToolchainError,
    cache_root,
    ensure_toolchain,
    lock_hash,
    worker_data,
)

API_VERSION = 1
"""The Worker API version this client speaks (the gateway's ``API_VERSION``)."""

__all__ = [
    "ADMIN_TOKEN_ENV",
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "MIN_NODE",
    "BuildOptions",
    "DevServer",
    "DurableObjectBinding",
    "EdgeModule",
    "Progress",
    "Toolchain",
    "ToolchainError",
    "VectorizeBinding",
    "WorkerBuild",
    "apply_migrations",
    "build_worker",
    "cache_root",
    "check_types",
    "discover_modules",
    "ensure_toolchain",
    "free_port",
    "local_admin_token",
    "lock_hash",
    "worker_data",
    "wrangler_config",
]
