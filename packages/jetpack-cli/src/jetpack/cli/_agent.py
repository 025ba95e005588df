"""One agent: its id, mail bus, state and leases; it runs one task at a time.

:meth:`Agent.run_task` takes a claimed task to its end: lease the files it
names → prompt (memories, others' leases) → executor (claim and leases renewed
all along) → verify → complete or fail (the store applies the back-off) →
remember what was learned → publish events → release the leases. Nothing
between claim and finish can strand a task: an unexpected error fails the
attempt, a cancellation (shutdown) hands the claim back (``release_task``: no
retry used), a lost claim stops the attempt at once, and errors after
``complete_task`` never re-open the task. Claiming, and when to stop, are the
:class:`~jetpack.cli.Orchestrator`'s; the services the agents share are in its
:class:`~jetpack.cli._context.RunContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jetpack.cli._context import RunContext, StopReason, quiet
from jetpack.cli._executors import ExecutionRequest, ExecutionResult, ProgressEvent
from jetpack.cli._logs import AttemptLog
from jetpack.cli._prompt import build_prompt, files_of
from jetpack.cli._verify import attempt_timeout, verify, verify_command
from jetpack.cli._worktrees import GitError, Worktree
from jetpack.shared import (
    AgentStatus,
    FailureType,
    MailBus,
    MemoryType,
    MessageType,
    Task,
    TaskStatus,
)
from jetpack.shared.errors import ConflictError, JetpackError

__all__ = ["START_DELAY_S", "Agent", "AgentState"]

logger = logging.getLogger(__name__)


START_DELAY_S = 0.25
"""An attempt still running after this long is marked ``in_progress`` in the task store."""


@dataclass(slots=True)
class AgentState:
    """What an agent is doing, for the live view and heartbeats."""

    status: AgentStatus = AgentStatus.IDLE
    task_id: str | None = None
    task_title: str | None = None
    task_started: float | None = None
    activity: str = ""
    completed: int = 0
    failed: int = 0
    log: AttemptLog | None = None
    """The running attempt's output, written to ``.jetpack/logs/`` when it ends."""
    outcome: str = ""


class Agent:
    """One agent of a run. Its bus is opened and closed by the Orchestrator around the run."""

    def __init__(
        self,
        agent_id: str,
        bus: MailBus,
        context: RunContext,
        request_stop: Callable[[StopReason, str], None],
    ) -> None:
        self.agent_id = agent_id
        self.bus = bus
        self.context = context
        self.state = AgentState()
        self.held: list[str] = []
        """Paths this agent holds leases on (for the task it runs)."""
        self._request_stop = request_stop

    # ---------------------------------------------------------------- presence
    def presence(self) -> dict[str, Any]:
        """The heartbeat's info: run, process, executor, current task, counts."""
        state = self.state
        return {
            "run_id": self.context.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "executor": self.context.executor.name,
            "task_id": state.task_id,
            "task_title": state.task_title,
            "activity": state.activity[:200],
            "completed": state.completed,
            "failed": state.failed,
        }

    async def heartbeats(self) -> None:
        """Announce the agent, then send a heartbeat every ``heartbeat_s`` (until cancelled)."""
        await self._publish(MessageType.AGENT_STARTED, {"run_id": self.context.run_id})
        self._emit("started", text=f"executor {self.context.executor.name}")
        while True:
            await quiet(self.bus.send_heartbeat(self.state.status, self.presence()))
            await asyncio.sleep(self.context.settings.heartbeat_s)

    async def sign_off(self) -> None:
        """Say the agent is offline and stopped (its last words on the bus)."""
        self.state.status = AgentStatus.OFFLINE
        await quiet(self.bus.send_heartbeat(AgentStatus.OFFLINE, self.presence()))
        await self._publish(MessageType.AGENT_STOPPED, {"run_id": self.context.run_id})
        self._emit("stopped")

    # ---------------------------------------------------------------- one task
    async def run_task(self, task: Task) -> None:
        """Run a task this agent has claimed, to its end (see the module docstring)."""
        state = self.state
        state.status, state.task_id, state.task_title = AgentStatus.BUSY, task.id, task.title
        state.task_started, state.activity = time.monotonic(), "claimed"
        state.log = AttemptLog(
            self.context.project_dir, task.id, self.agent_id, self.context.run_id
        )
        state.outcome = "ended: the claim was lost to another agent"
        self._emit("claimed", task.id, task.title)
        await self._publish(MessageType.TASK_CLAIMED, {"task_id": task.id, "title": task.title})
        files = files_of(task)
        attempt = asyncio.create_task(self._attempt(task, files))
        keepalive = asyncio.create_task(self._keep_alive(task))
        try:
            await asyncio.wait({attempt, keepalive}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done():  # the claim was lost: someone else owns the task now
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
                self._emit("claim_lost", task.id, "stopped the attempt")
            else:
                attempt.result()
        except asyncio.CancelledError:
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            await asyncio.shield(self._interrupt(task))
            raise
        except Exception as exc:  # a bug or a store failure: never strand the task
            logger.exception("%s: attempt at %s failed unexpectedly", self.agent_id, task.id)
            state.outcome = f"failed: orchestrator error: {exc}"
            await quiet(
                self.context.tasks.fail_task(task.id, self.agent_id, f"orchestrator: {exc}")
            )
            self._emit("error", task.id, str(exc))
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
            await asyncio.shield(self._release_leases(task))
            if state.log is not None:
                state.log.write(state.outcome)
            state.status, state.task_id, state.task_title = AgentStatus.IDLE, None, None
            state.task_started, state.activity, state.log = None, "", None

    async def _keep_alive(self, task: Task) -> None:
        """Renew the claim and leases every third of their lifetime; return if the claim is lost."""
        settings = self.context.settings
        period = min(settings.claim_ttl_ms, settings.lease_ttl_ms) / 3000
        while True:
            await asyncio.sleep(period)
            try:
                await self.context.tasks.renew_claim(
                    task.id, self.agent_id, ttl_ms=settings.claim_ttl_ms
                )
            except ConflictError:
                logger.warning("%s: lost the claim on %s", self.agent_id, task.id)
                return
            except JetpackError as exc:
                logger.warning(
                    "%s: renewing the claim on %s failed: %s", self.agent_id, task.id, exc
                )
            for path in list(self.held):
                await quiet(self.bus.renew_lease(path, settings.lease_ttl_ms))

    async def _acquire_leases(self, task: Task, files: list[str]) -> bool:
        """Lease every file (waiting up to ``lease_wait_s`` for others' leases); False: gave up."""
        settings = self.context.settings
        deadline = time.monotonic() + settings.lease_wait_s
        waited = False
        while True:
            blocked = None
            for path in files:
                if path in self.held:
                    continue
                try:
                    ok = await self.bus.acquire_lease(path, settings.lease_ttl_ms, True)
                except ConflictError:
                    ok = False
                if not ok:
                    blocked = path
                    break
                self.held.append(path)
            if blocked is None:
                if self.held:
                    await self._publish(
                        MessageType.FILE_LOCK, {"task_id": task.id, "files": list(self.held)}
                    )
                return True
            if not waited:
                self._emit("lease_wait", task.id, f"waiting for {blocked}")
                waited = True
            self.state.activity = f"waiting for lease on {blocked}"
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(0.5, settings.lease_wait_s / 4 or 0.1))

    async def _release_leases(self, task: Task) -> None:
        if not self.held:
            return
        for path in self.held:
            await quiet(self.bus.release_lease(path))
        await self._publish(MessageType.FILE_UNLOCK, {"task_id": task.id, "files": list(self.held)})
        self.held.clear()

    async def _attempt(self, task: Task, files: list[str]) -> None:
        context, state = self.context, self.state
        if files and not await self._acquire_leases(task, files):
            await self._release_leases(task)
            await context.tasks.release_task(task.id, self.agent_id)
            state.outcome = "handed back: its files are leased by another agent"
            self._emit("released", task.id, "files leased by another agent")
            await asyncio.sleep(context.settings.poll_s)
            return
        memories, leases = await asyncio.gather(context.memories(task), context.leases(self.bus))
        writing = asyncio.Event()
        starter = asyncio.create_task(self._mark_started(task, writing))
        tree: Worktree | None = None
        workdir = context.project_dir
        if context.worktrees is not None:
            try:
                tree = await context.worktrees.create(task.id)
            except GitError as exc:
                starter.cancel()
                await asyncio.gather(starter, return_exceptions=True)
                await self._finish(
                    task,
                    ExecutionResult(
                        ok=False, error=str(exc), summary=str(exc), failure_type=FailureType.ERROR
                    ),
                )
                return
            workdir = tree.path
        try:
            state.activity = "preparing"
            command = verify_command(task, context.settings)
            prompt = build_prompt(
                task,
                agent_id=self.agent_id,
                memories=memories,
                others_leases=[le for le in leases if le.agent_id != self.agent_id],
                my_files=files,
                verify_command=command,
                mcp_tools=bool(getattr(context.executor, "mcp_tools", False)),
            )
            state.activity = "running"
            result = await context.executor.execute(
                ExecutionRequest(
                    task=task,
                    prompt=prompt,
                    workdir=workdir,
                    timeout_s=attempt_timeout(task, context.settings),
                    idle_timeout_s=context.settings.idle_timeout_s,
                    agent_id=self.agent_id,
                ),
                lambda event: self._progress(task, event),
            )
            if result.ok and command:
                state.activity = f"verifying: {command}"
                result = await verify(command, workdir, result, context.settings)
            if result.ok and tree is not None and context.worktrees is not None:
                try:
                    result.details["git"] = await context.worktrees.finish(
                        tree, f"{task.title} ({task.id})"
                    )
                except GitError as exc:
                    result = ExecutionResult(
                        ok=False,
                        error=str(exc),
                        summary=str(exc),
                        failure_type=FailureType.ERROR,
                        duration_s=result.duration_s,
                    )
        finally:
            if not writing.is_set():
                starter.cancel()
            await asyncio.gather(starter, return_exceptions=True)
            if tree is not None and context.worktrees is not None:
                with contextlib.suppress(GitError):
                    await asyncio.shield(context.worktrees.remove(tree))
        await self._finish(task, result)

    async def _mark_started(self, task: Task, writing: asyncio.Event) -> None:
        """Mark the task ``in_progress`` once its attempt has run for START_DELAY_S.

        Attempts that end sooner go from claimed to completed directly, saving a
        task-store write, the single biggest cost of a short task.
        """
        await asyncio.sleep(START_DELAY_S)
        writing.set()
        await quiet(self.context.tasks.start_task(task.id, self.agent_id))

    def _progress(self, task: Task, event: ProgressEvent) -> None:
        text = f"{event.kind}: {event.text}" if event.text else event.kind
        hint = event.data.get("hint") if event.data else None
        if self.state.log is not None:
            self.state.log.add(f"{text} {hint}" if hint else text)
        self.state.activity = text[:200]
        self._emit("progress", task.id, text[:300])

    # ------------------------------------------------------------ its outcome
    async def _complete(self, task: Task, payload: dict[str, Any]) -> None:
        """complete_task, accepting a task the agent already completed itself (MCP tools)."""
        tasks = self.context.tasks
        try:
            await tasks.complete_task(task.id, self.agent_id, result=payload)
        except ConflictError:
            current = await tasks.get_task(task.id)
            if current is None or current.status is not TaskStatus.COMPLETED:
                raise
            logger.info("task %s was already completed by its agent", task.id)

    async def _finish(self, task: Task, result: ExecutionResult) -> None:
        context, state = self.context, self.state
        elapsed = time.monotonic() - (state.task_started or time.monotonic())
        if not result.ok and result.fatal:
            state.outcome = f"handed back: {result.fatal}"
            await self._run_failure(task, result.fatal)
            return
        if result.ok:
            state.outcome = f"completed in {elapsed:.1f}s: {result.summary}"
            payload = {**result.as_result(), "agent_id": self.agent_id}
            if "git" in result.details:
                payload["git"] = result.details["git"]
            await self._complete(task, payload)
            state.completed += 1
            context.summary.completed.append(task.id)
            self._emit("completed", task.id, f"{task.title} ({elapsed:.1f}s)")
            context.remember(
                task,
                self.agent_id,
                result,
                MemoryType.AGENT_LEARNING,
                f'Completed task {task.id} "{task.title}": {result.summary}',
                0.6,
            )
            await self._publish(
                MessageType.TASK_COMPLETED, {"task_id": task.id, "duration_s": round(elapsed, 3)}
            )
            return
        error = (result.error or result.summary or "failed")[:8000]
        failure = result.failure_type or FailureType.ERROR
        state.outcome = f"failed ({failure}) after {elapsed:.1f}s: {error}"
        updated = await context.tasks.fail_task(task.id, self.agent_id, error, failure)
        if updated.status is TaskStatus.FAILED:
            state.failed += 1
            context.summary.failed.append(task.id)
            self._emit("failed", task.id, f"{failure}: {error[:300]}")
            kind = MessageType.TASK_FAILED
        else:
            context.summary.retried.append(task.id)
            when = updated.not_before.isoformat() if updated.not_before else "now"
            self._emit("retry", task.id, f"{failure}: {error[:200]} (retry {when})")
            kind = MessageType.TASK_RETRY_SCHEDULED
        mtype = (
            MemoryType.TEST_FAILURE_ANALYSIS
            if result.details.get("verify_failed")
            else MemoryType.AGENT_LEARNING
        )
        context.remember(
            task,
            self.agent_id,
            result,
            mtype,
            f'Attempt {updated.retry_count} at task {task.id} "{task.title}" '
            f"failed ({failure}): {error[:1500]}",
            0.7,
        )
        await self._publish(
            kind,
            {
                "task_id": task.id,
                "error": error[:1000],
                "failure_type": failure.value,
                "retry_count": updated.retry_count,
            },
        )

    async def _run_failure(self, task: Task, why: str) -> None:
        """Not the task's fault: hand it back (no retry used) and stop the run."""
        summary = self.context.summary
        await self.context.tasks.release_task(task.id, self.agent_id)
        summary.interrupted.append(task.id)
        self._emit("interrupted", task.id, "handed back (no retry used)")
        await self._publish(MessageType.TASK_INTERRUPTED, {"task_id": task.id})
        if summary.fatal is None:
            summary.fatal = why
            self._emit("fatal", task.id, why)
        self._request_stop(StopReason.FATAL, why)

    async def _interrupt(self, task: Task) -> None:
        """Hand an interrupted task back: ready again, no retry used."""
        self.state.outcome = "interrupted: handed back (no retry used)"
        released = await quiet(self.context.tasks.release_task(task.id, self.agent_id))
        if released:
            self.context.summary.interrupted.append(task.id)
            self._emit("interrupted", task.id, "handed back (no retry used)")
            await self._publish(MessageType.TASK_INTERRUPTED, {"task_id": task.id})

    # ---------------------------------------------------------------- helpers
    def _emit(self, kind: str, task_id: str | None = None, text: str = "") -> None:
        self.context.emit(kind, self.agent_id, task_id, text)

    async def _publish(self, kind: MessageType, payload: dict[str, Any]) -> None:
        await quiet(self.bus.publish(kind, payload))
