"""The orchestrator: a run of N agents over the shared stores, until stopped or out of work.

It owns the run: the :class:`~jetpack.cli._context.RunContext` (the services the
agents share), the :class:`~jetpack.cli.Agent` objects (one mail bus each,
opened for the run), claiming (``claim_next`` per agent; an agent that finds
nothing waits on the run's :class:`~jetpack.cli._wakeups.WorkSignal`, woken
through the mail bus), heartbeats, ``until_empty`` across runs
(:mod:`jetpack.cli._drain`), outages (no claims while the task store is away:
:mod:`jetpack.cli._network`), and stopping
(:class:`~jetpack.cli._context.StopReason`): a stop request ends the claims and
gives running attempts ``shutdown_grace_s``; a forced stop cancels them, and
each agent hands its task back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from jetpack.cli._agent import Agent
from jetpack.cli._context import RunContext, RunSummary, StopReason
from jetpack.cli._drain import DrainCheck
from jetpack.cli._events import EventLog
from jetpack.cli._executors import Executor
from jetpack.cli._settings import OrchestratorSettings
from jetpack.cli._wakeups import WorkSignal
from jetpack.shared import (
    AgentStatus,
    MailBus,
    MemoryStore,
    MessageType,
    Task,
    TaskStore,
    repeatable,
)
from jetpack.shared.errors import JetpackError, UnavailableError

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
        own = [agent.agent_id for agent in self.agents]
        self.signal = WorkSignal(fallback_s=self.context.settings.poll_s, own=own)
        """Wakes idle agents: one mail subscription for the run (on its first agent's bus)."""
        self.signal.attach(self.agents[0].bus)
        self.drain = DrainCheck(
            tasks=tasks,
            bus=self.agents[0].bus,
            own=own,
            busy=lambda: any(a.state.status is AgentStatus.BUSY for a in self.agents),
            skills=self.skills,
            network=self.context.network,
        )
        """The until-empty rule across runs."""
        self.stop_reason: StopReason | None = None
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()

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
            self.signal.release()

    def force_stop(self) -> None:
        """Stop now: running attempts are killed (process group) and handed back."""
        self.request_stop()
        self._force.set()

    async def run(self) -> RunSummary:
        """Run every agent; return when they all ended (stop or empty queue)."""
        started = time.monotonic()
        self.signal.start()
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
                await asyncio.gather(*(agent.sign_off() for agent in self.agents))
                await self.signal.close()
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
        network = self.context.network
        while not self.stopping:
            if not network.is_up("tasks"):  # claim nothing while the task store is away
                await self._unless_stopping(network.wait_up("tasks"))
                agent.unsure = True
                continue
            if agent.unsure:
                await self._drop_orphans(agent)
            since, started = self.signal.generation, time.monotonic()
            task = await self._claim(agent)
            if task is None:
                if self.stopping or not network.is_up("tasks"):
                    continue
                if self.until_empty:
                    verdict = await self.drain.check(started)
                    if verdict.drained:
                        self.request_stop(StopReason.DRAINED, verdict.why)
                        return
                    if verdict.due_s is not None:
                        self.signal.due_in(verdict.due_s)
                await self.signal.wait(since)
                continue
            if self._stopping.is_set():  # stop requested while we were claiming
                await network.quietly(
                    "tasks", self.context.tasks.release_task(task.id, agent.agent_id)
                )
                return
            self.signal.pass_on()
            await agent.run_task(task)

    async def _claim(self, agent: Agent) -> Task | None:
        """The next ready task for ``agent`` (None: none, or the store did not answer).

        The claim is repeatable (same idempotency key) until the store answers
        one: a claim whose answer an outage lost is answered when the store is
        back, instead of being left to lapse (which would cost the task a retry).
        """
        tasks, network = self.context.tasks, self.context.network
        try:
            with repeatable(f"{agent.agent_id}:claim:{agent.claims}"):
                claim = tasks.claim_next(
                    agent.agent_id, self.skills, ttl_ms=self.settings.claim_ttl_ms
                )
                task = await network.call("tasks", claim)
        except UnavailableError:
            network.probe("tasks", lambda: tasks.get_ready_tasks(1))
            return None
        except Exception as exc:  # a store hiccup must not end the agent
            agent.claims += 1
            agent.unsure = True
            logger.warning("%s: claim failed: %s", agent.agent_id, exc)
            return None
        agent.claims += 1
        return task

    async def _drop_orphans(self, agent: Agent) -> None:
        """Hand back claims the store holds for ``agent`` that it does not run.

        After an outage or a failed claim, a claim may have been made whose
        answer never arrived; left alone it would lapse and cost the task a
        retry. The agent is idle here, so whatever it holds is such a claim.
        """
        tasks, network = self.context.tasks, self.context.network
        held = await network.quietly("tasks", tasks.get_tasks_by_agent(agent.agent_id))
        if held is None:
            return
        agent.unsure = False
        for task in held:
            released = await network.quietly("tasks", tasks.release_task(task.id, agent.agent_id))
            if released:
                self.context.emit(
                    "released", agent.agent_id, task.id, "a claim whose answer was lost"
                )
                await network.quietly(
                    "mail", agent.bus.publish(MessageType.TASK_AVAILABLE, {"task_id": task.id})
                )

    async def _unless_stopping(self, wait: Coroutine[Any, Any, None]) -> None:
        """Await ``wait``, or return early when the run stops."""
        waiter = asyncio.ensure_future(wait)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (waiter, stop):
                future.cancel()
            await asyncio.gather(waiter, stop, return_exceptions=True)
