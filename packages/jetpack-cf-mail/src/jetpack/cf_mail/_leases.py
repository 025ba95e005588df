"""Lease operations of the bus: each decision is one call to the project's LeaseDO.

A call goes as a frame on the bus's lease socket (opened at the first lease
operation, kept open); while that socket is down, the same operation goes as
an HTTP request, so a lease call never waits for a reconnect.
"""

from __future__ import annotations

import logging
from typing import Any

from jetpack.cf_mail import _wire
from jetpack.cf_mail._link import LeaseSocket, SocketDown
from jetpack.shared import Lease, LeaseStatus
from jetpack.shared.edge.client import EdgeClient
from jetpack.shared.errors import LeaseHeldError, ValidationError
from jetpack.shared.rules import check_ttl, normalize_lease_path

__all__ = ["LeaseOps"]

logger = logging.getLogger("jetpack.cf_mail")

_FIRST_WAIT = 5.0
"""Seconds the first lease operation waits for the lease socket before using HTTP."""


class LeaseOps:
    """File leases (paths and globs) with fencing tokens; mixed into CloudflareMailBus.

    The Worker normalises paths and decides overlap with the same rules as
    ``jetpack.shared.rules``; the client checks its arguments first, so bad
    input never leaves the machine.
    """

    _client: EdgeClient
    _leases: LeaseSocket
    _agent_id: str
    _granted: dict[str, int]
    """Path -> fencing token of each lease granted through this bus (for shutdown)."""

    def _require_open(self) -> None:
        raise NotImplementedError

    async def _lease_call(
        self,
        frame: dict[str, Any],
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str | int] | None = None,
    ) -> Any:
        """The answer of one lease operation: over the lease socket, else over HTTP."""
        link = self._leases
        if not link.running:
            link.launch()
            await link.wait_established(_FIRST_WAIT)
        if link.connected:
            try:
                return await link.call(frame)
            except SocketDown as exc:
                logger.debug("mail bus %s: %s; lease call over HTTP", self._agent_id, exc)
        return await self._client.json(method, path, json=body, params=params)

    async def grant_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> Lease:
        """Like :meth:`acquire_lease`, but return the grant (with its fencing token).

        Raises LeaseHeldError naming the holder, its expiry and the pattern in the way.
        """
        norm = normalize_lease_path(path)
        ttl = check_ttl(ttl_ms)
        if not isinstance(exclusive, bool):
            raise ValidationError("exclusive", "must be a boolean")
        self._require_open()
        body = {"path": norm, "agent_id": self._agent_id, "ttl_ms": ttl, "exclusive": exclusive}
        frame = {"op": "acquire", "path": norm, "ttl_ms": ttl, "exclusive": exclusive}
        answer = await self._lease_call(frame, "POST", _wire.LEASE, body=body)
        if not answer["acquired"]:
            held = _wire.lease_of(answer["held_by"])
            raise LeaseHeldError(norm, held.agent_id, held.expires_at, pattern=held.path)
        lease = _wire.lease_of(answer["lease"])
        self._granted[lease.path] = lease.fencing_token
        return lease

    async def acquire_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> bool:
        """Lease a path or glob; False if an overlapping lease of another agent conflicts.

        Exclusive conflicts with anything; shared only with exclusive.
        Re-acquiring one's own lease renews it with a new fencing token. A
        Worker that cannot be reached raises UnavailableError (never False).
        """
        try:
            await self.grant_lease(path, ttl_ms, exclusive)
        except LeaseHeldError as exc:
            logger.debug("mail bus %s: %s", self._agent_id, exc)
            return False
        return True

    async def renew_lease(self, path: str, ttl_ms: int) -> bool:
        """Extend this agent's live lease on exactly ``path``; False if it holds none."""
        norm = normalize_lease_path(path)
        ttl = check_ttl(ttl_ms)
        self._require_open()
        body = {"path": norm, "agent_id": self._agent_id, "ttl_ms": ttl}
        frame = {"op": "renew", "path": norm, "ttl_ms": ttl}
        return bool((await self._lease_call(frame, "POST", _wire.RENEW, body=body))["renewed"])

    async def release_lease(self, path: str) -> bool:
        """Release this agent's lease on exactly ``path``; False if it holds none."""
        norm = normalize_lease_path(path)
        self._require_open()
        self._granted.pop(norm, None)
        params: dict[str, str | int] = {"path": norm, "agent_id": self._agent_id}
        frame = {"op": "release", "path": norm}
        answer = await self._lease_call(frame, "DELETE", _wire.LEASE, params=params)
        return bool(answer["released"])

    async def _release_granted(self) -> None:
        """Release the leases granted through this bus that still carry their grant's token."""
        granted, self._granted = self._granted, {}
        for path, token in granted.items():
            params: dict[str, str | int] = {
                "path": path,
                "agent_id": self._agent_id,
                "fencing_token": token,
            }
            frame = {"op": "release", "path": path, "fencing_token": token}
            try:
                await self._lease_call(frame, "DELETE", _wire.LEASE, params=params)
            except Exception:
                logger.exception("mail bus %s: lease %r not released", self._agent_id, path)

    async def is_leased(self, path: str) -> LeaseStatus:
        """Whether any live lease (of anyone) overlaps ``path``: exclusive ones first."""
        norm = normalize_lease_path(path)
        self._require_open()
        frame = {"op": "status", "path": norm}
        answer = await self._lease_call(frame, "GET", _wire.LEASE, params={"path": norm})
        return _wire.status_of(answer)

    async def list_leases(self) -> list[Lease]:
        """All live leases, of every agent, in grant order."""
        self._require_open()
        return _wire.leases_of(await self._lease_call({"op": "list"}, "GET", _wire.LEASES))
