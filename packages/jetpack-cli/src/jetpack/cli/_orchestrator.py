"""The orchestrator: N agent loops over the shared stores (the per-task steps are in ``_agent``).

Each loop: ``claim_next`` → lease the files the task names → run the executor
(with a timeout; claim and leases renewed all along) → verify → complete or
fail (the store applies the back-off) → remember what was learned → publish
events → release the leases. Nothing between claim and finish can strand a
task: an unexpected error fails the attempt, a shutdown hands the claim back
(``release_task``: no retry used), a lost claim stops the attempt at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from jetpack.cli._agent import START_DELAY_S, AgentState, AgentWork, RunSummary
from jetpack.cli._events import EventLog
from jetpack.cli._executors import Executor
from jetpack.cli._memory_writer import MemoryWriter
from jetpack.cli._settings import OrchestratorSettings
from jetpack.cli._worktrees import WorktreeManager
from jetpack.shared import AgentStatus, MailBus, MemoryStore, MessageType, TaskStatus, TaskStore
from jetpack.shared.errors import JetpackError

__all__ = ["START_DELAY_S", "AgentState", "Orchestrator", "RunSummary", "new_run_id"]

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    """A short random id naming one ``jetpack start`` run (agent ids are unique per run)."""
    return secrets.token_hex(3)


class Orchestrator(AgentWork):
    """Runs ``agent_count`` agent loops until stopped (or until no work is left)."""

    def __init__(
        self,
        *,
        tasks: TaskStore,
        memory: MemoryStore | None,
        mail_factory: Callable[[str], MailBus],
        executor: Executor,
        settings: OrchestratorSettings | None = None,
        project_dir: Path = Path("."),
        agent_count: int = 3,
        skills: Sequence[str] | None = None,
        until_empty: bool = False,
        run_id: str | None = None,
        events: EventLog | None = None,
    ) -> None:
        self.tasks = tasks
        self.memory = memory
        self.mail_factory = mail_factory
        self.executor = executor
        self.settings = settings or OrchestratorSettings()
        self.project_dir = project_dir
        self.skills = list(skills) if skills is not None else None
        self.until_empty = until_empty
        self.run_id = run_id or new_run_id()
        self.events = events or EventLog(None)
        self.agents = [AgentState(f"agent-{self.run_id}-{i + 1}") for i in range(agent_count)]
        self.summary = RunSummary(self.run_id)
        self._memory_writer: MemoryWriter | None = None
        self.stop_reason: str | None = None
        self._leases_cache: list[Any] = []
        self._leases_at = -1e9
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()
        self._drain_checked = 0.0
        self._worktrees = (
            WorktreeManager(project_dir, merge=self.settings.merge == "merge")
            if self.settings.worktrees
            else None
        )

    # ----------------------------------------------------------------- control
    @property
    def stopping(self) -> bool:
        """True once a stop was requested: no more claims."""
        return self._stopping.is_set()

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop claiming; running attempts get ``shutdown_grace_s`` to finish."""
        if not self._stopping.is_set():
            logger.info("%s: no new claims", reason)
            self.stop_reason = reason
            self._stopping.set()

    def force_stop(self) -> None:
        """Stop now: running attempts are killed (process group) and handed back."""
        self.request_stop()
        self._force.set()

    async def run(self) -> RunSummary:
        """Run every agent loop; return when they all ended (stop or empty queue)."""
        started = time.monotonic()
        try:
            recovered = await self.tasks.recover_expired_claims()
        except JetpackError:
            logger.exception("recovering expired claims failed")
            recovered = []
        for task in recovered:
            self.emit("recovered", "orchestrator", task.id, "lapsed claim of a stopped run")
        async with AsyncExitStack() as stack:
            buses = [
                await stack.enter_async_context(self.mail_factory(a.agent_id)) for a in self.agents
            ]
            loops = [
                asyncio.create_task(self._agent_loop(state, bus), name=state.agent_id)
                for state, bus in zip(self.agents, buses, strict=True)
            ]
            beats = [
                asyncio.create_task(self._heartbeat_loop(state, bus))
                for state, bus in zip(self.agents, buses, strict=True)
            ]
            try:
                await self._supervise(loops)
            finally:
                for loop in loops:
                    loop.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
                for beat in beats:
                    beat.cancel()
                await asyncio.gather(*beats, return_exceptions=True)
                for state, bus in zip(self.agents, buses, strict=True):
                    state.status = AgentStatus.OFFLINE
                    await self._quiet(bus.send_heartbeat(AgentStatus.OFFLINE, self._info(state)))
                    await self._publish(bus, MessageType.AGENT_STOPPED, {"run_id": self.run_id})
                    self.emit("stopped", state.agent_id)
                if self._memory_writer is not None:
                    await self._memory_writer.close()
        self.summary.duration_s = time.monotonic() - started
        return self.summary

    async def _supervise(self, loops: list[asyncio.Task[None]]) -> None:
        """Wait for the loops; after a stop request, give them the grace period, then cancel."""
        stop_wait: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        force_wait: asyncio.Future[Any] = asyncio.ensure_future(self._force.wait())
        pending: set[asyncio.Future[Any]] = set(loops)
        try:
            while pending and not stop_wait.done():
                done, pending = await asyncio.wait(
                    pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stop_wait)
                for loop in done - {stop_wait}:
                    if not loop.cancelled() and loop.exception() is not None:
                        logger.error("agent loop crashed", exc_info=loop.exception())
            deadline = time.monotonic() + self.settings.shutdown_grace_s
            while pending and not force_wait.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                _, pending = await asyncio.wait(
                    pending | {force_wait}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(force_wait)
            for loop in pending:
                loop.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            stop_wait.cancel()
            force_wait.cancel()

    # ------------------------------------------------------------------ loops
    async def _heartbeat_loop(self, state: AgentState, bus: MailBus) -> None:
        await self._publish(bus, MessageType.AGENT_STARTED, {"run_id": self.run_id})
        self.emit("started", state.agent_id, text=f"executor {self.executor.name}")
        while True:
            await self._quiet(bus.send_heartbeat(state.status, self._info(state)))
            await asyncio.sleep(self.settings.heartbeat_s)

    def _info(self, state: AgentState) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "executor": self.executor.name,
            "task_id": state.task_id,
            "task_title": state.task_title,
            "activity": state.activity[:200],
            "completed": state.completed,
            "failed": state.failed,
        }

    async def _agent_loop(self, state: AgentState, bus: MailBus) -> None:
        while not self.stopping:
            try:
                task = await self.tasks.claim_next(
                    state.agent_id, self.skills, ttl_ms=self.settings.claim_ttl_ms
                )
            except Exception as exc:  # a store hiccup must not end the agent
                logger.warning("%s: claim failed: %s", state.agent_id, exc)
                task = None
            if task is None:
                if self.until_empty and await self._drained():
                    self.request_stop("no task left to run")
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.poll_s)
                continue
            if self._stopping.is_set():  # stop requested while we were claiming
                await self._quiet(self.tasks.release_task(task.id, state.agent_id))
                return
            await self._work(state, bus, task)

    async def _drained(self) -> bool:
        """True when no task can still become ready: none ready, held, backing off or waiting."""
        now = time.monotonic()
        if now - self._drain_checked < min(self.settings.poll_s, 0.5):
            return False
        self._drain_checked = now
        tasks = {t.id: t for t in await self.tasks.list_tasks()}
        if any(t.status in (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS) for t in tasks.values()):
            return False
        # A task can still run if it has no blockers and each dependency is completed
        # or can itself still run (a fixpoint over the open tasks).
        open_ids = {
            i for i, t in tasks.items() if t.status in (TaskStatus.PENDING, TaskStatus.READY)
        }
        alive: set[str] = set()
        changed = True
        while changed:
            changed = False
            for task_id in open_ids - alive:
                task = tasks[task_id]
                if not task.blockers and all(
                    dep in alive or (dep in tasks and tasks[dep].status is TaskStatus.COMPLETED)
                    for dep in task.dependencies
                ):
                    alive.add(task_id)
                    changed = True
        return not alive
