"""The claim lifecycle methods of :class:`~jetpack.beads.BeadsAdapter`.

Each checks its plain arguments on the event loop, then runs as one write
transaction on the writer thread (:class:`~jetpack.beads._claims.Claims`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jetpack.beads._checks import (
    check_agent_id,
    check_error,
    check_failure_type,
    check_minutes,
    check_skills,
    check_task_id,
    check_ttl,
)
from jetpack.beads._claims import Claims
from jetpack.beads._db import Database
from jetpack.beads._rows import dump_json
from jetpack.shared import FailureType, Task
from jetpack.shared.rules import check_json_object

__all__ = ["ClaimMethods"]


class ClaimMethods:
    """Claim, renew, start, release, complete, fail, recover (mixed into the adapter)."""

    claim_ttl_ms: int
    _db: Database
    _claims: Claims

    def _claim_ttl(self, agent_id: str, ttl_ms: int | None) -> int:
        check_agent_id(agent_id)
        return check_ttl(self.claim_ttl_ms if ttl_ms is None else ttl_ms)

    async def claim_task(
        self, task_id: str, agent_id: str, *, ttl_ms: int | None = None
    ) -> Task | None:
        """Claim one ready task; None if it is not ready or someone else won."""
        ttl = self._claim_ttl(agent_id, ttl_ms)
        check_task_id(task_id)
        return await self._db.job(self._claims.claim_task, task_id, agent_id, ttl)

    async def claim_next(
        self,
        agent_id: str,
        skills: Sequence[str] | None = None,
        *,
        ttl_ms: int | None = None,
    ) -> Task | None:
        """Atomically claim the best ready task whose required skills ``skills`` covers."""
        ttl = self._claim_ttl(agent_id, ttl_ms)
        wanted = check_skills(skills)
        encoded = None if wanted is None else dump_json(wanted)
        return await self._db.job(self._claims.claim_next, agent_id, ttl, encoded)

    async def renew_claim(self, task_id: str, agent_id: str, *, ttl_ms: int | None = None) -> Task:
        """Extend the holder's claim; ConflictError if ``agent_id`` does not hold it.

        A claim past its expiry is lost: the call raises ConflictError and the
        task is back in the queue (one retry used), committed.
        """
        ttl = self._claim_ttl(agent_id, ttl_ms)
        check_task_id(task_id)
        return await self._db.job(self._claims.renew, task_id, agent_id, ttl)

    async def start_task(self, task_id: str, agent_id: str) -> Task:
        """Mark a held task ``in_progress``; ConflictError if ``agent_id`` does not hold it."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        return await self._db.job(self._claims.start, task_id, agent_id)

    async def release_task(self, task_id: str, agent_id: str) -> bool:
        """Give a held task back (no retry used); False unless ``agent_id`` holds it."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        return await self._db.job(self._claims.release, task_id, agent_id)

    async def complete_task(
        self,
        task_id: str,
        agent_id: str,
        *,
        actual_minutes: int | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> Task:
        """Finish a held task: completed_at, actual_minutes (from the claim if not given)."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        minutes = check_minutes(actual_minutes)
        if result is not None:
            check_json_object(result, "result")
        return await self._db.job(self._claims.complete, task_id, agent_id, minutes, result)

    async def fail_task(
        self,
        task_id: str,
        agent_id: str,
        error: str,
        failure_type: FailureType = FailureType.ERROR,
    ) -> Task:
        """Record a failed attempt: back off and retry, or fail and block every dependant."""
        check_agent_id(agent_id)
        check_task_id(task_id)
        message = check_error(error)
        kind = check_failure_type(failure_type)
        return await self._db.job(self._claims.fail, task_id, agent_id, message, kind)

    async def recover_expired_claims(self) -> list[Task]:
        """Return every lapsed claim to the queue (retry + 1, ``stalled``), now."""
        return await self._db.job(self._claims.recover)
