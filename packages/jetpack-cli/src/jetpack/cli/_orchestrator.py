"""The orchestrator: a run of N agents over the shared stores, until stopped or out of work.

It owns the run: the :class:`~jetpack.cli._context.RunContext` (the services the
agents share), the :class:`~jetpack.cli.Agent` objects (one mail bus each,
opened for the run), claiming (``claim_next`` per agent, a pause when nothing is
ready), heartbeats, and stopping (:class:`~jetpack.cli._context.StopReason`): a
stop request ends the claims and gives running attempts ``shutdown_grace_s``; a
forced stop cancels them, and each agent hands its task back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from jetpack.cli._agent import Agent
from jetpack.cli._context import RunContext, RunSummary, StopReason, quiet
from jetpack.cli._events import EventLog
from jetpack.cli._executors import Executor
from jetpack.cli._settings import OrchestratorSettings
from jetpack.shared import MailBus, MemoryStore, Task, TaskStatus, TaskStore
from jetpack.shared.errors import JetpackError

__all__ = ["Orchestrator", "new_run_id"]

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    """A short random id naming one ``jetpack start`` run (agent ids are unique per run)."""
    return secrets.token_hex(3)


class Orchestrator:
    """Runs ``agent_count`` agents until stopped (or, with ``until_empty``, until no work is left).

    ``mail_factory(agent_id)`` gives each agent its own (unopened) mail bus;
    ``run()`` opens them for the run and closes them after.
    """

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
        self.context = RunContext(
            run_id=run_id or new_run_id(),
            tasks=tasks,
            memory=memory,
            executor=executor,
            settings=settings or OrchestratorSettings(),
            events=events or EventLog(None),
            project_dir=project_dir,
        )
        self.skills = list(skills) if skills is not None else None
        self.until_empty = until_empty
        self.agents = [
            Agent(agent_id, mail_factory(agent_id), self.context, self.request_stop)
            for agent_id in (f"agent-{self.run_id}-{i + 1}" for i in range(agent_count))
        ]
        self.stop_reason: StopReason | None = None
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()
        self._drain_checked = 0.0

    # ------------------------------------------------------------ the run's face
    @property
    def run_id(self) -> str:
        """The run's id (agent ids are ``agent-<run_id>-<n>``)."""
        return self.context.run_id

    @property
    def settings(self) -> OrchestratorSettings:
        """The ``[orchestrator]`` settings the run uses."""
        return self.context.settings

    @property
    def events(self) -> EventLog:
        """The run's events (recent ones in memory, listeners, the log file)."""
        return self.context.events

    @property
    def summary(self) -> RunSummary:
        """What the run did so far."""
        return self.context.summary

    # ----------------------------------------------------------------- control
    @property
    def stopping(self) -> bool:
        """True once a stop was requested: no more claims."""
        return self._stopping.is_set()

    def request_stop(self, reason: StopReason = StopReason.REQUESTED, detail: str = "") -> None:
        """Stop claiming; running attempts get ``shutdown_grace_s`` to finish."""
        if not self._stopping.is_set():
            logger.info("%s: no new claims", detail or reason)
            self.stop_reason = reason
            self._stopping.set()

    def force_stop(self) -> None:
        """Stop now: running attempts are killed (process group) and handed back."""
        self.request_stop()
        self._force.set()

    async def run(self) -> RunSummary:
        """Run every agent; return when they all ended (stop or empty queue)."""
        started = time.monotonic()
        try:
            recovered = await self.context.tasks.recover_expired_claims()
        except JetpackError:
            logger.exception("recovering expired claims failed")
            recovered = []
        for task in recovered:
            self.context.emit("recovered", "orchestrator", task.id, "lapsed claim of a stopped run")
        async with AsyncExitStack() as stack:
            for agent in self.agents:
                await stack.enter_async_context(agent.bus)
            loops = [
                asyncio.create_task(self._serve(agent), name=agent.agent_id)
                for agent in self.agents
            ]
            beats = [asyncio.create_task(agent.heartbeats()) for agent in self.agents]
            try:
                await self._supervise(loops)
            finally:
                for loop in loops:
                    loop.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
                for beat in beats:
                    beat.cancel()
                await asyncio.gather(*beats, return_exceptions=True)
                for agent in self.agents:
                    await agent.sign_off()
                await self.context.close()
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

    # ------------------------------------------------------------------ claims
    async def _serve(self, agent: Agent) -> None:
        """Give ``agent`` one task after another until the run stops."""
        while not self.stopping:
            task = await self._claim(agent)
            if task is None:
                if self.until_empty and await self._drained():
                    self.request_stop(StopReason.DRAINED)
                    return
                await self._idle(agent)
                continue
            if self._stopping.is_set():  # stop requested while we were claiming
                await quiet(self.context.tasks.release_task(task.id, agent.agent_id))
                return
            await agent.run_task(task)

    async def _claim(self, agent: Agent) -> Task | None:
        """The next ready task for ``agent`` (None: none, or the store did not answer)."""
        try:
            return await self.context.tasks.claim_next(
                agent.agent_id, self.skills, ttl_ms=self.settings.claim_ttl_ms
            )
        except Exception as exc:  # a store hiccup must not end the agent
            logger.warning("%s: claim failed: %s", agent.agent_id, exc)
            return None

    async def _idle(self, agent: Agent) -> None:
        """Wait before ``agent`` claims again: ``poll_s``, or less if the run stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.poll_s)

    async def _drained(self) -> bool:
        """True when no task can still become ready: none ready, held, backing off or waiting."""
        now = time.monotonic()
        if now - self._drain_checked < min(self.settings.poll_s, 0.5):
            return False
        self._drain_checked = now
        tasks = {t.id: t for t in await self.context.tasks.list_tasks()}
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
