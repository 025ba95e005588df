"""CloudflareTaskStore: the TaskStore on the Jetpack Worker (D1), over HTTP.

Every rule (readiness, claims, back-off, blocking) runs in the Worker, inside
D1 transactions; this client validates models locally (bad input never leaves
the machine), sends one request per call through the shared
:class:`~jetpack.shared.edge.client.EdgeClient`, and maps answers back to the
contract's return values and typed errors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Self

from jetpack.cf_beads import _wire
from jetpack.shared import (
    ID_PATTERN,
    AsyncStoreMixin,
    FailureType,
    Task,
    TaskInput,
    TaskListOptions,
    TaskStats,
    TaskStatus,
    TaskUpdate,
    parse,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.edge.client import EdgeClient, worker_credentials
from jetpack.shared.errors import ConflictError, NotFoundError, ValidationError
from jetpack.shared.registry import config_options
from jetpack.shared.rules import (
    DEFAULT_CLAIM_TTL_MS,
    DEFAULT_RETRY_BASE_MS,
    check_json_object,
    check_options,
)

__all__ = ["CloudflareTaskStore"]

logger = logging.getLogger(__name__)

_ID = re.compile(ID_PATTERN)
_OPTIONS = ("retry_base_ms", "claim_ttl_ms", "timeout", "retries")


def _known(task_id: object) -> bool:
    """Whether ``task_id`` could name a stored task (ids are checked at creation)."""
    return isinstance(task_id, str) and _ID.match(task_id) is not None


class CloudflareTaskStore(AsyncStoreMixin):
    """Tasks on the Jetpack Worker: many machines share one task graph.

    Args:
        worker_url: the Worker's URL (``jetpack edge dev`` prints a local one).
        api_token: a project token, or an agent-bound one (``jetpack edge token``).
        retry_base_ms: back-off base sent with each ``fail_task``.
        claim_ttl_ms: default claim lifetime sent with each claim.
        timeout: seconds to wait for the Worker per request.
        retries: further attempts after a failed request (all are safe to repeat).
    """

    def __init__(
        self,
        worker_url: str,
        api_token: str,
        *,
        retry_base_ms: int = DEFAULT_RETRY_BASE_MS,
        claim_ttl_ms: int = DEFAULT_CLAIM_TTL_MS,
        timeout: float = 30.0,
        retries: int = 4,
        **unknown: object,
    ) -> None:
        check_options(unknown, _OPTIONS)
        if (
            isinstance(retry_base_ms, bool)
            or not isinstance(retry_base_ms, int)
            or retry_base_ms < 0
        ):
            raise ValidationError("retry_base_ms", "must be a non-negative integer")
        if isinstance(claim_ttl_ms, bool) or not isinstance(claim_ttl_ms, int) or claim_ttl_ms <= 0:
            raise ValidationError("claim_ttl_ms", "must be a positive integer of milliseconds")
        self.retry_base_ms = retry_base_ms
        self.claim_ttl_ms = claim_ttl_ms
        self._client = EdgeClient(
            worker_url, api_token, module="tasks", timeout=timeout, retries=retries
        )

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str, **options: Any) -> Self:
        """Build from ``[cloudflare]`` (``worker_url``) and ``JETPACK_API_TOKEN``.

        Options (``retry_base_ms``, ``claim_ttl_ms``, ``timeout``, ``retries``)
        come from a ``[cf_beads]`` table (unknown keys there are logged), overridden by
        ``options`` (unknown ones refused). ``agent_id`` is not used: a task
        store is shared by every agent.
        """
        worker_url, api_token = worker_credentials(config)
        table = config_options(config, "cf_beads", _OPTIONS)
        return cls(worker_url, api_token, **{**table, **options})

    def __repr__(self) -> str:
        return f"CloudflareTaskStore({self._client.url!r})"

    async def open(self) -> None:
        """Connect and check the Worker's API version and task module."""
        await self._client.open()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # -- CRUD -----------------------------------------------------------------

    async def create_task(self, task: TaskInput | Mapping[str, Any]) -> Task:
        """Create one task. Existing id → ConflictError; unknown dependency → ValidationError."""
        body = _wire.input_body(parse(TaskInput, task))
        return _wire.task_of(await self._client.request("POST", _wire.TASKS, json=body))

    async def create_tasks(self, tasks: Sequence[TaskInput | Mapping[str, Any]]) -> list[Task]:
        """Create many in one transaction, all or none (bodies over 1 MiB go in parts)."""
        if isinstance(tasks, str | bytes | Mapping) or not isinstance(tasks, Sequence):
            raise ValidationError("tasks", "must be a list of tasks")
        inputs = [_wire.input_body(parse(TaskInput, item)) for item in tasks]
        if not inputs:
            return []
        answer = await self._client.request("POST", _wire.BATCH, json={"tasks": inputs})
        return _wire.tasks_of(answer)

    async def import_tasks(
        self, tasks: Sequence[Task | Mapping[str, Any]], *, replace: bool = False
    ) -> int:
        """Write whole tasks as given: all or none; existing ids conflict unless ``replace``."""
        parsed = [parse(Task, task) for task in tasks]
        ids = [task.id for task in parsed]
        if len(set(ids)) != len(ids):
            raise ConflictError("the same task id appears twice in the import")
        if not parsed:
            return 0
        body = {"tasks": [_wire.task_body(t) for t in parsed], "replace": bool(replace)}
        answer = await self._client.json("POST", _wire.IMPORT, json=body)
        return int(answer["count"])

    async def get_task(self, task_id: str) -> Task | None:
        """The task, or None."""
        if not _known(task_id):
            return None
        response = await self._client.request("GET", _wire.task_path(task_id), allow=(404,))
        return None if response.status_code == 404 else _wire.task_of(response)

    async def update_task(self, task_id: str, update: TaskUpdate | Mapping[str, Any]) -> Task:
        """Apply the fields set in ``update``; bumps ``version`` and ``updated_at``."""
        body = _wire.update_body(parse(TaskUpdate, update))
        answer = await self._client.request(
            "PATCH", _wire.task_path(task_id), json=body, not_found=("task", task_id)
        )
        return _wire.task_of(answer)

    async def delete_task(self, task_id: str) -> bool:
        """Delete a task nobody depends on (else ConflictError); False if it did not exist."""
        if not _known(task_id):
            return False
        response = await self._client.request("DELETE", _wire.task_path(task_id), allow=(404,))
        return response.status_code != 404

    # -- queries ----------------------------------------------------------------

    async def list_tasks(
        self, options: TaskListOptions | Mapping[str, Any] | None = None
    ) -> list[Task]:
        """Tasks matching the filters, in creation order, with limit/offset."""
        opts = parse(TaskListOptions, options or {})
        return await self._list(_wire.list_params(opts))

    async def _list(self, params: dict[str, str | int], path: str = _wire.TASKS) -> list[Task]:
        return _wire.tasks_of(await self._client.request("GET", path, params=params))

    async def get_ready_tasks(self, limit: int | None = None) -> list[Task]:
        """Ready tasks in claim order: priority (critical first), then age."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValidationError("limit", "must be a non-negative integer or None")
        return await self._list({} if limit is None else {"limit": limit}, _wire.READY)

    async def get_tasks_by_status(self, status: TaskStatus) -> list[Task]:
        """Tasks in one status, in creation order."""
        return await self.list_tasks({"status": [status]})

    async def get_tasks_by_agent(self, agent_id: str) -> list[Task]:
        """Tasks the agent holds now (claimed or in progress)."""
        opts = parse(TaskListOptions, {"assigned_agent": agent_id})
        return await self._list(_wire.list_params(opts, held_only=True))

    async def get_stats(self) -> TaskStats:
        """Counts by status and priority, the ready count, mean completion time."""
        return TaskStats.model_validate(await self._client.json("GET", _wire.STATS))

    async def sync(self) -> None:
        """Nothing to sync: the Worker is the store."""

    # -- claims -------------------------------------------------------------------

    def _ttl(self, ttl_ms: int | None) -> int:
        return self.claim_ttl_ms if ttl_ms is None else ttl_ms

    async def claim_task(
        self, task_id: str, agent_id: str, *, ttl_ms: int | None = None
    ) -> Task | None:
        """Claim one ready task; None if it is not ready or someone else won."""
        if not _known(task_id):
            raise NotFoundError("task", str(task_id))
        body = {"agent_id": agent_id, "ttl_ms": self._ttl(ttl_ms)}
        response = await self._client.request(
            "POST",
            _wire.task_path(task_id, "claim"),
            json=body,
            allow=(409,),
            not_found=("task", task_id),
        )
        if response.status_code == 409:
            return None
        return _wire.task_of(response)

    async def claim_next(
        self,
        agent_id: str,
        skills: Sequence[str] | None = None,
        *,
        ttl_ms: int | None = None,
    ) -> Task | None:
        """Atomically claim the best ready task the agent has the skills for."""
        if skills is not None and (
            isinstance(skills, str | bytes) or not isinstance(skills, Sequence | set | frozenset)
        ):
            raise ValidationError("skills", "must be a list of skill names or None")
        body = {
            "agent_id": agent_id,
            "skills": None if skills is None else list(skills),
            "ttl_ms": self._ttl(ttl_ms),
        }
        return _wire.maybe_task_of(await self._client.request("POST", _wire.CLAIM_NEXT, json=body))

    async def _holder(self, task_id: str, action: str, body: dict[str, Any]) -> Task:
        if not _known(task_id):
            raise NotFoundError("task", str(task_id))
        response = await self._client.request(
            "POST", _wire.task_path(task_id, action), json=body, not_found=("task", task_id)
        )
        return _wire.task_of(response)

    async def renew_claim(self, task_id: str, agent_id: str, *, ttl_ms: int | None = None) -> Task:
        """Extend the holder's claim; ConflictError if ``agent_id`` does not hold it."""
        body = {"agent_id": agent_id, "ttl_ms": self._ttl(ttl_ms)}
        return await self._holder(task_id, "renew", body)

    async def start_task(self, task_id: str, agent_id: str) -> Task:
        """Mark a held task ``in_progress``; ConflictError if ``agent_id`` does not hold it."""
        return await self._holder(task_id, "start", {"agent_id": agent_id})

    async def release_task(self, task_id: str, agent_id: str) -> bool:
        """Give a held task back (no retry used); False unless ``agent_id`` holds it."""
        if not _known(task_id):
            return False
        response = await self._client.request(
            "POST", _wire.task_path(task_id, "release"), json={"agent_id": agent_id}, allow=(404,)
        )
        return response.status_code == 200 and bool(response.json()["released"])

    async def complete_task(
        self,
        task_id: str,
        agent_id: str,
        *,
        actual_minutes: int | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> Task:
        """Finish a held task (``result`` goes to ``metadata["result"]``)."""
        body = {
            "agent_id": agent_id,
            "actual_minutes": actual_minutes,
            "result": None if result is None else check_json_object(result, "result"),
        }
        return await self._holder(task_id, "complete", body)

    async def fail_task(
        self,
        task_id: str,
        agent_id: str,
        error: str,
        failure_type: FailureType = FailureType.ERROR,
    ) -> Task:
        """Record a failed attempt: back off and retry, or fail and block every dependant."""
        body = {
            "agent_id": agent_id,
            "error": error,
            "failure_type": str(failure_type) if isinstance(failure_type, str) else failure_type,
            "retry_base_ms": self.retry_base_ms,
        }
        return await self._holder(task_id, "fail", body)

    async def recover_expired_claims(self) -> list[Task]:
        """Return every lapsed claim to the queue (retry + 1, ``stalled``), now."""
        return _wire.tasks_of(await self._client.request("POST", _wire.RECOVER))
