"""Lease operations of the bus: each decision is one BEGIN IMMEDIATE transaction."""

from __future__ import annotations

import logging
import sqlite3

from jetpack.mcp_mail import _sql as sql
from jetpack.mcp_mail._checks import check_ttl
from jetpack.mcp_mail._db import Database
from jetpack.shared import Lease, LeaseStatus, to_ms, utcnow
from jetpack.shared.errors import LeaseHeldError, ValidationError
from jetpack.shared.rules import normalize_lease_path, paths_overlap

__all__ = ["LeaseOps"]

logger = logging.getLogger("jetpack.mcp_mail")


class LeaseOps:
    """File leases (paths and globs) with fencing tokens; mixed into MCPMailAdapter."""

    _db: Database
    _agent_id: str
    _granted: dict[str, int]
    """Path -> fencing token of each lease granted through this bus (for shutdown)."""

    def _require_open(self) -> None:
        raise NotImplementedError

    async def grant_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> Lease:
        """Like :meth:`acquire_lease`, but return the grant (with its fencing token).

        Raises LeaseHeldError naming the holder when an overlapping lease conflicts.
        """
        norm = normalize_lease_path(path)
        ttl = check_ttl(ttl_ms)
        if not isinstance(exclusive, bool):
            raise ValidationError("exclusive", "must be a boolean")
        self._require_open()

        def work(conn: sqlite3.Connection) -> tuple[Lease | None, Lease | None]:
            with self._db.transaction(conn):
                return sql.acquire_lease(
                    conn, self._agent_id, norm, exclusive, to_ms(utcnow()), ttl
                )

        lease, conflict = await self._db.call(work)
        if lease is None:
            assert conflict is not None
            raise LeaseHeldError(
                norm, conflict.agent_id, conflict.expires_at, pattern=conflict.path
            )
        self._granted[lease.path] = lease.fencing_token
        return lease

    async def acquire_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> bool:
        """Lease a path or glob; False if an overlapping lease of another agent conflicts.

        Exclusive conflicts with anything; shared only with exclusive. Re-acquiring
        one's own lease renews it with a new fencing token.
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

        def work(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                return sql.renew_lease(conn, self._agent_id, norm, to_ms(utcnow()), ttl)

        return await self._db.call(work)

    async def release_lease(self, path: str) -> bool:
        """Release this agent's lease on exactly ``path``; False if it holds none."""
        norm = normalize_lease_path(path)
        self._require_open()

        def work(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                return sql.release_lease(conn, self._agent_id, norm, to_ms(utcnow()))

        self._granted.pop(norm, None)
        return await self._db.call(work)

    async def is_leased(self, path: str) -> LeaseStatus:
        """Whether any live lease (of anyone) overlaps ``path``: exclusive ones first."""
        norm = normalize_lease_path(path)
        leases = await self.list_leases()
        matches = [lease for lease in leases if paths_overlap(lease.path, norm)]
        if not matches:
            return LeaseStatus(path=norm, is_leased=False)
        best = min(matches, key=lambda lease: (not lease.exclusive, lease.fencing_token))
        return LeaseStatus(
            path=norm,
            is_leased=True,
            agent_id=best.agent_id,
            expires_at=best.expires_at,
            exclusive=best.exclusive,
            fencing_token=best.fencing_token,
            pattern=best.path,
        )

    async def list_leases(self) -> list[Lease]:
        """All live leases, of every agent, in grant order."""
        self._require_open()
        return await self._db.call(sql.live_leases, to_ms(utcnow()))
