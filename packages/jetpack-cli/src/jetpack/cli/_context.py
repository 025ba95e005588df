"""What the agents of one run share: the stores, the executor, the settings, events, memory writes.

A :class:`RunContext` is built once per run by the :class:`~jetpack.cli.Orchestrator`
and handed to each :class:`~jetpack.cli.Agent`. It owns the shared services and
what the agents learn together (the run's summary, the memory writer, a view of
the live leases); the agents own only what is theirs (their mail bus, state and
leases). Stopping the run is the orchestrator's: :class:`StopReason` says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from jetpack.cli._events import EventLog, OrchestratorEvent
from jetpack.cli._executors import ExecutionResult, Executor
from jetpack.cli._memory_writer import MemoryWriter
from jetpack.cli._settings import OrchestratorSettings
from jetpack.cli._worktrees import WorktreeManager
from jetpack.shared import (
    Lease,
    MailBus,
    MemoryEntry,
    MemoryStore,
    MemoryType,
    Task,
    TaskStore,
    utcnow,
)
from jetpack.shared.errors import JetpackError

__all__ = ["RunContext", "RunSummary", "StopReason", "quiet"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

LEASE_VIEW_S = 1.0
"""How old the shared view of the live leases (for prompts) may be."""


class StopReason(StrEnum):
    """Why a run stopped claiming new tasks."""

    REQUESTED = "stop requested"
    """``Orchestrator.request_stop()`` from the program running it."""
    SIGNAL = "signal received"
    """SIGINT or SIGTERM (``jetpack start``)."""
    DRAINED = "no task left to run"
    """``until_empty``: no task is ready, running, held or backing off."""
    FATAL = "the executor cannot run tasks"
    """An executor problem no task can get past (``RunSummary.fatal`` says what, and the fix)."""


@dataclass(slots=True)
class RunSummary:
    """What a run did."""

    run_id: str
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    fatal: str | None = None
    """Why the executor cannot run any task (and how to fix it), if that stopped the run."""


async def quiet(awaitable: Awaitable[T]) -> T | None:
    """Await a best-effort store call: errors are logged, never raised (None instead)."""
    try:
        return await awaitable
    except JetpackError as exc:
        logger.warning("store call failed: %s", exc)
    except Exception:
        logger.exception("store call failed")
    return None


class RunContext:
    """The services the agents of one run share (one per run, built by the Orchestrator)."""

    def __init__(
        self,
        *,
        run_id: str,
        tasks: TaskStore,
        memory: MemoryStore | None,
        executor: Executor,
        settings: OrchestratorSettings,
        events: EventLog,
        project_dir: Path,
    ) -> None:
        self.run_id = run_id
        self.tasks = tasks
        self.memory = memory
        self.executor = executor
        self.settings = settings
        self.events = events
        self.project_dir = project_dir
        self.summary = RunSummary(run_id)
        self.memory_writer = MemoryWriter(memory) if memory is not None else None
        """Queues what attempts taught; written in batches, closed by :meth:`close`."""
        self.worktrees = (
            WorktreeManager(project_dir, merge=settings.merge == "merge")
            if settings.worktrees
            else None
        )
        self._leases: list[Lease] = []
        self._leases_at = -1e9

    def emit(self, kind: str, agent_id: str, task_id: str | None = None, text: str = "") -> None:
        """Record an orchestrator event."""
        self.events.emit(OrchestratorEvent(kind, agent_id, task_id, text, run_id=self.run_id))

    async def memories(self, task: Task) -> list[MemoryEntry]:
        """What was learned before that bears on ``task`` (empty without a memory store)."""
        if self.memory is None or self.settings.memory_context == 0:
            return []
        query = f"{task.title} {task.description or ''}"[:2000]
        try:
            return await self.memory.hybrid_search(query, self.settings.memory_context)
        except JetpackError as exc:
            logger.warning("memory search failed: %s", exc)
            return []

    def remember(
        self,
        task: Task,
        agent_id: str,
        result: ExecutionResult,
        kind: MemoryType,
        content: str,
        importance: float,
    ) -> None:
        """Queue what an attempt taught (after its task's fate is recorded)."""
        if self.memory_writer is None:
            return
        metadata = {
            "task_id": task.id,
            "agent_id": agent_id,
            "executor": self.executor.name,
            "duration_s": round(result.duration_s, 3),
            "at": utcnow().isoformat(),
        }
        self.memory_writer.add(
            {
                "type": kind,
                "content": content[:8000],
                "importance": importance,
                "metadata": metadata,
            }
        )

    async def leases(self, bus: MailBus) -> list[Lease]:
        """Live leases for the prompt, shared by the agents for up to a second.

        The prompt's list is advice; ``acquire_lease`` is what enforces exclusion,
        so a view a second old is good enough and saves a read per task.
        """
        now = time.monotonic()
        if now - self._leases_at > LEASE_VIEW_S:
            result: Any = await quiet(bus.list_leases())
            self._leases = list(result) if isinstance(result, list) else []
            self._leases_at = time.monotonic()
        return self._leases

    async def close(self) -> None:
        """Write the memories still queued (bounded: see :class:`MemoryWriter`)."""
        if self.memory_writer is not None:
            await self.memory_writer.close()
