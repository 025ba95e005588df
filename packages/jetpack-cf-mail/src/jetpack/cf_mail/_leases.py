"""Lease operations of the bus: each decision is one call to the project's LeaseDO."""

from __future__ import annotations

import logging

from jetpack.cf_mail import _wire
from jetpack.shared import Lease, LeaseStatus
from jetpack.shared.edge.client import EdgeClient
from jetpack.shared.errors import LeaseHeldError, ValidationError
from jetpack.shared.rules import MAX_TTL_MS, check_ttl, normalize_lease_path

__all__ = ["LeaseOps"]

logger = logging.getLogger("jetpack.cf_mail")


class LeaseOps:
    """File leases (paths and globs) with fencing tokens; mixed into CloudflareMailBus.

    The Worker normalises paths and decides overlap with the same rules as
    ``jetpack.shared.rules``; the client checks its arguments first, so bad
    input never leaves the machine.
    """

    _client: EdgeClient
    _agent_id: str
    _granted: dict[str, int]
    """Path -> fencing token of each lease granted through this bus (for shutdown)."""

    def _require_open(self) -> None:
        raise NotImplementedError

    async def grant_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> Lease:
        """Like :meth:`acquire_lease`, but return the grant (with its fencing token).

        Raises LeaseHeldError naming the holder, its expiry and the pattern in the way.
        """
        norm = normalize_lease_path(path)
        ttl = check_ttl(ttl_ms, maximum=MAX_TTL_MS)
        if not isinstance(exclusive, bool):
            raise ValidationError("exclusive", "must be a boolean")
        self._require_open()
        body = {"path": norm, "agent_id": self._agent_id, "ttl_ms": ttl, "exclusive": exclusive}
        answer = await self._client.json("POST", _wire.LEASE, json=body)
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
        ttl = check_ttl(ttl_ms, maximum=MAX_TTL_MS)
        self._require_open()
        body = {"path": norm, "agent_id": self._agent_id, "ttl_ms": ttl}
        answer = await self._client.json("POST", _wire.RENEW, json=body)
        return bool(answer["renewed"])

    async def release_lease(self, path: str) -> bool:
        """Release this agent's lease on exactly ``path``; False if it holds none."""
        norm = normalize_lease_path(path)
        self._require_open()
        self._granted.pop(norm, None)
        params = {"path": norm, "agent_id": self._agent_id}
        answer = await self._client.json("DELETE", _wire.LEASE, params=params)
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
            try:
                await self._client.request("DELETE", _wire.LEASE, params=params)
            except Exception:
                logger.exception("mail bus %s: lease %r not released", self._agent_id, path)

    async def is_leased(self, path: str) -> LeaseStatus:
        """Whether any live lease (of anyone) overlaps ``path``: exclusive ones first."""
        norm = normalize_lease_path(path)
        self._require_open()
        return _wire.status_of(await self._client.json("GET", _wire.LEASE, params={"path": norm}))

    async def list_leases(self) -> list[Lease]:
        """All live leases, of every agent, in grant order."""
        self._require_open()
        return _wire.leases_of(await self._client.json("GET", _wire.LEASES))
