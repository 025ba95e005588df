"""One agent's attempt at one task: leases, prompt, executor, verify, finish.

:class:`AgentWork` holds the per-task steps; :class:`~jetpack.cli.Orchestrator`
builds on it with the loops, heartbeats and shutdown. Nothing between claim and
finish can strand a task: an unexpected error fails the attempt, a shutdown
hands the claim back (``release_task``: no retry used), a lost claim stops the
attempt at once, and errors after ``complete_task`` never re-open the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetpack.cli._events import EventLog, OrchestratorEvent
from jetpack.cli._executors import ExecutionRequest, ExecutionResult, Executor, ProgressEvent
from jetpack.cli._logs import AttemptLog
from jetpack.cli._memory_writer import MemoryWriter
from jetpack.cli._process import run_process
from jetpack.cli._prompt import build_prompt, files_of
from jetpack.cli._settings import OrchestratorSettings
from jetpack.cli._worktrees import GitError, Worktree, WorktreeManager
from jetpack.shared import (
    AgentStatus,
    FailureType,
    MailBus,
    MemoryEntry,
    MemoryStore,
    MemoryType,
    MessageType,
    Task,
    TaskStatus,
    TaskStore,
    utcnow,
)
from jetpack.shared.errors import ConflictError, JetpackError

__all__ = ["START_DELAY_S", "AgentState", "AgentWork", "RunSummary"]

logger = logging.getLogger(__name__)


START_DELAY_S = 0.25
"""An attempt still running after this long is marked ``in_progress`` in the task store."""


@dataclass(slots=True)
class AgentState:
    """What one agent is doing, for the live view and heartbeats."""

    agent_id: str
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


class AgentWork:
    """The per-task steps of an agent; the state they use is set by the Orchestrator."""

    tasks: TaskStore
    memory: MemoryStore | None
    executor: Executor
    settings: OrchestratorSettings
    project_dir: Path
    run_id: str
    events: EventLog
    summary: RunSummary
    _worktrees: WorktreeManager | None
    _memory_writer: MemoryWriter | None
    _leases_cache: list[Any]
    _leases_at: float

    def emit(self, kind: str, agent_id: str, task_id: str | None = None, text: str = "") -> None:
        """Record an orchestrator event."""
        self.events.emit(OrchestratorEvent(kind, agent_id, task_id, text, run_id=self.run_id))

    # ---------------------------------------------------------------- one task
    async def _work(self, state: AgentState, bus: MailBus, task: Task) -> None:
        state.status, state.task_id, state.task_title = AgentStatus.BUSY, task.id, task.title
        state.task_started, state.activity = time.monotonic(), "claimed"
        state.log = AttemptLog(self.project_dir, task.id, state.agent_id, self.run_id)
        state.outcome = "ended: the claim was lost to another agent"
        self.emit("claimed", state.agent_id, task.id, task.title)
        await self._publish(
            bus, MessageType.TASK_CLAIMED, {"task_id": task.id, "title": task.title}
        )
        files = files_of(task)
        held: list[str] = []
        attempt = asyncio.create_task(self._attempt(state, bus, task, files, held))
        keepalive = asyncio.create_task(self._keep_alive(state, bus, task, held))
        try:
            await asyncio.wait({attempt, keepalive}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done():  # the claim was lost: someone else owns the task now
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
                self.emit("claim_lost", state.agent_id, task.id, "stopped the attempt")
            else:
                attempt.result()
        except asyncio.CancelledError:
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            await asyncio.shield(self._interrupt(state, bus, task))
            raise
        except Exception as exc:  # a bug or a store failure: never strand the task
            logger.exception("%s: attempt at %s failed unexpectedly", state.agent_id, task.id)
            state.outcome = f"failed: orchestrator error: {exc}"
            await self._quiet(self.tasks.fail_task(task.id, state.agent_id, f"orchestrator: {exc}"))
            self.emit("error", state.agent_id, task.id, str(exc))
        finally:
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
            await asyncio.shield(self._release_leases(bus, task, held))
            if state.log is not None:
                state.log.write(state.outcome)
            state.status, state.task_id, state.task_title = AgentStatus.IDLE, None, None
            state.task_started, state.activity, state.log = None, "", None

    async def _keep_alive(
        self, state: AgentState, bus: MailBus, task: Task, held: list[str]
    ) -> None:
        """Renew the claim and leases every third of their lifetime; return if the claim is lost."""
        period = min(self.settings.claim_ttl_ms, self.settings.lease_ttl_ms) / 3000
        while True:
            await asyncio.sleep(period)
            try:
                await self.tasks.renew_claim(
                    task.id, state.agent_id, ttl_ms=self.settings.claim_ttl_ms
                )
            except ConflictError:
                logger.warning("%s: lost the claim on %s", state.agent_id, task.id)
                return
            except JetpackError as exc:
                logger.warning(
                    "%s: renewing the claim on %s failed: %s", state.agent_id, task.id, exc
                )
            for path in list(held):
                await self._quiet(bus.renew_lease(path, self.settings.lease_ttl_ms))

    async def _acquire_leases(
        self, state: AgentState, bus: MailBus, task: Task, files: list[str], held: list[str]
    ) -> bool:
        deadline = time.monotonic() + self.settings.lease_wait_s
        waited = False
        while True:
            blocked = None
            for path in files:
                if path in held:
                    continue
                try:
                    ok = await bus.acquire_lease(path, self.settings.lease_ttl_ms, True)
                except ConflictError:
                    ok = False
                if not ok:
                    blocked = path
                    break
                held.append(path)
            if blocked is None:
                if held:
                    await self._publish(
                        bus, MessageType.FILE_LOCK, {"task_id": task.id, "files": held}
                    )
                return True
            if not waited:
                self.emit("lease_wait", state.agent_id, task.id, f"waiting for {blocked}")
                waited = True
            state.activity = f"waiting for lease on {blocked}"
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(0.5, self.settings.lease_wait_s / 4 or 0.1))

    async def _attempt(
        self, state: AgentState, bus: MailBus, task: Task, files: list[str], held: list[str]
    ) -> None:
        if files and not await self._acquire_leases(state, bus, task, files, held):
            await self._release_leases(bus, task, held)
            await self.tasks.release_task(task.id, state.agent_id)
            state.outcome = "handed back: its files are leased by another agent"
            self.emit("released", state.agent_id, task.id, "files leased by another agent")
            await asyncio.sleep(self.settings.poll_s)
            return
        memories, leases = await asyncio.gather(self._memories(task), self._leases(bus))
        writing = asyncio.Event()
        starter = asyncio.create_task(self._mark_started(task, state, writing))
        tree: Worktree | None = None
        workdir = self.project_dir
        if self._worktrees is not None:
            try:
                tree = await self._worktrees.create(task.id)
            except GitError as exc:
                starter.cancel()
                await asyncio.gather(starter, return_exceptions=True)
                await self._finish(
                    state,
                    bus,
                    task,
                    ExecutionResult(
                        ok=False, error=str(exc), summary=str(exc), failure_type=FailureType.ERROR
                    ),
                )
                return
            workdir = tree.path
        try:
            state.activity = "preparing"
            prompt = build_prompt(
                task,
                agent_id=state.agent_id,
                memories=memories,
                others_leases=[le for le in leases if le.agent_id != state.agent_id],
                my_files=files,
                verify_command=self._verify_command(task),
                mcp_tools=bool(getattr(self.executor, "mcp_tools", False)),
            )
            state.activity = "running"
            result = await self.executor.execute(
                ExecutionRequest(
                    task=task,
                    prompt=prompt,
                    workdir=workdir,
                    timeout_s=self._timeout(task),
                    idle_timeout_s=self.settings.idle_timeout_s,
                    agent_id=state.agent_id,
                ),
                lambda event: self._progress(state, task, event),
            )
            if result.ok:
                result = await self._verify(state, task, workdir, result)
            if result.ok and tree is not None and self._worktrees is not None:
                try:
                    result.details["git"] = await self._worktrees.finish(
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
            if tree is not None and self._worktrees is not None:
                with contextlib.suppress(GitError):
                    await asyncio.shield(self._worktrees.remove(tree))
        await self._finish(state, bus, task, result)

    async def _mark_started(self, task: Task, state: AgentState, writing: asyncio.Event) -> None:
        """Mark the task ``in_progress`` once its attempt has run for START_DELAY_S.

        Attempts that end sooner go from claimed to completed directly, saving a
        task-store write, the single biggest cost of a short task.
        """
        await asyncio.sleep(START_DELAY_S)
        writing.set()
        await self._quiet(self.tasks.start_task(task.id, state.agent_id))

    async def _complete(self, task: Task, state: AgentState, payload: dict[str, Any]) -> None:
        """complete_task, accepting a task the agent already completed itself (MCP tools)."""
        try:
            await self.tasks.complete_task(task.id, state.agent_id, result=payload)
        except ConflictError:
            current = await self.tasks.get_task(task.id)
            if current is None or current.status is not TaskStatus.COMPLETED:
                raise
            logger.info("task %s was already completed by its agent", task.id)

    async def _finish(
        self, state: AgentState, bus: MailBus, task: Task, result: ExecutionResult
    ) -> None:
        elapsed = time.monotonic() - (state.task_started or time.monotonic())
        if not result.ok and result.fatal:
            state.outcome = f"handed back: {result.fatal}"
            await self._run_failure(state, bus, task, result.fatal)
            return
        if result.ok:
            state.outcome = f"completed in {elapsed:.1f}s: {result.summary}"
            payload = {**result.as_result(), "agent_id": state.agent_id}
            if "git" in result.details:
                payload["git"] = result.details["git"]
            await self._complete(task, state, payload)
            state.completed += 1
            self.summary.completed.append(task.id)
            self.emit("completed", state.agent_id, task.id, f"{task.title} ({elapsed:.1f}s)")
            await self._remember(
                task,
                state,
                result,
                MemoryType.AGENT_LEARNING,
                f'Completed task {task.id} "{task.title}": {result.summary}',
                0.6,
            )
            await self._publish(
                bus,
                MessageType.TASK_COMPLETED,
                {"task_id": task.id, "duration_s": round(elapsed, 3)},
            )
            return
        error = (result.error or result.summary or "failed")[:8000]
        failure = result.failure_type or FailureType.ERROR
        state.outcome = f"failed ({failure}) after {elapsed:.1f}s: {error}"
        updated = await self.tasks.fail_task(task.id, state.agent_id, error, failure)
        if updated.status is TaskStatus.FAILED:
            state.failed += 1
            self.summary.failed.append(task.id)
            self.emit("failed", state.agent_id, task.id, f"{failure}: {error[:300]}")
            kind = MessageType.TASK_FAILED
        else:
            self.summary.retried.append(task.id)
            when = updated.not_before.isoformat() if updated.not_before else "now"
            self.emit("retry", state.agent_id, task.id, f"{failure}: {error[:200]} (retry {when})")
            kind = MessageType.TASK_RETRY_SCHEDULED
        mtype = (
            MemoryType.TEST_FAILURE_ANALYSIS
            if result.details.get("verify_failed")
            else MemoryType.AGENT_LEARNING
        )
        await self._remember(
            task,
            state,
            result,
            mtype,
            f'Attempt {updated.retry_count} at task {task.id} "{task.title}" '
            f"failed ({failure}): {error[:1500]}",
            0.7,
        )
        await self._publish(
            bus,
            kind,
            {
                "task_id": task.id,
                "error": error[:1000],
                "failure_type": failure.value,
                "retry_count": updated.retry_count,
            },
        )

    async def _run_failure(self, state: AgentState, bus: MailBus, task: Task, why: str) -> None:
        """Not the task's fault: hand it back (no retry used) and stop the run."""
        await self.tasks.release_task(task.id, state.agent_id)
        self.summary.interrupted.append(task.id)
        self.emit("interrupted", state.agent_id, task.id, "handed back (no retry used)")
        await self._publish(bus, MessageType.TASK_INTERRUPTED, {"task_id": task.id})
        if self.summary.fatal is None:
            self.summary.fatal = why
            self.emit("fatal", state.agent_id, task.id, why)
        self.request_stop(why)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop claiming (the Orchestrator implements it)."""
        raise NotImplementedError

    async def _interrupt(self, state: AgentState, bus: MailBus, task: Task) -> None:
        """Hand an interrupted task back: ready again, no retry used."""
        state.outcome = "interrupted: handed back (no retry used)"
        released = await self._quiet(self.tasks.release_task(task.id, state.agent_id))
        if released:
            self.summary.interrupted.append(task.id)
            self.emit("interrupted", state.agent_id, task.id, "handed back (no retry used)")
            await self._publish(bus, MessageType.TASK_INTERRUPTED, {"task_id": task.id})

    # ---------------------------------------------------------------- helpers
    def _verify_command(self, task: Task) -> str | None:
        command = task.metadata.get("verify")
        if isinstance(command, str) and command.strip():
            return command
        return self.settings.verify_command

    async def _verify(
        self, state: AgentState, task: Task, workdir: Path, result: ExecutionResult
    ) -> ExecutionResult:
        command = self._verify_command(task)
        if not command:
            return result
        state.activity = f"verifying: {command}"
        proc = await run_process(
            ["/bin/sh", "-c", command],
            cwd=workdir,
            timeout_s=self.settings.verify_timeout_s,
            kill_grace_s=self.settings.kill_grace_s,
        )
        if proc.ok:
            result.details["verified"] = command
            return result
        tail = "\n".join((proc.stdout_tail + proc.stderr_tail)[-30:]).strip()
        error = f"verification `{command}` failed (exit {proc.exit_code}"
        error += ", timed out)" if proc.timed_out else ")"
        error += f": {tail}" if tail else ""
        failure = FailureType.TIMEOUT if proc.timed_out else FailureType.ERROR
        return ExecutionResult(
            ok=False,
            summary=error,
            error=error,
            failure_type=failure,
            duration_s=result.duration_s,
            details={"verify_failed": True},
        )

    def _timeout(self, task: Task) -> float:
        limit = self.settings.task_timeout_s
        timeout = task.metadata.get("timeout_s")
        if isinstance(timeout, int | float) and timeout > 0:
            return float(timeout)
        return limit

    def _progress(self, state: AgentState, task: Task, event: ProgressEvent) -> None:
        text = f"{event.kind}: {event.text}" if event.text else event.kind
        hint = event.data.get("hint") if event.data else None
        if state.log is not None:
            state.log.add(f"{text} {hint}" if hint else text)
        state.activity = text[:200]
        self.emit("progress", state.agent_id, task.id, text[:300])

    async def _memories(self, task: Task) -> list[MemoryEntry]:
        if self.memory is None or self.settings.memory_context == 0:
            return []
        query = f"{task.title} {task.description or ''}"[:2000]
        try:
            return await self.memory.hybrid_search(query, self.settings.memory_context)
        except JetpackError as exc:
            logger.warning("memory search failed: %s", exc)
            return []

    async def _remember(
        self,
        task: Task,
        state: AgentState,
        result: ExecutionResult,
        kind: MemoryType,
        content: str,
        importance: float,
    ) -> None:
        if self.memory is None:
            return
        metadata = {
            "task_id": task.id,
            "agent_id": state.agent_id,
            "executor": self.executor.name,
            "duration_s": round(result.duration_s, 3),
            "at": utcnow().isoformat(),
        }
        if self._memory_writer is None:
            self._memory_writer = MemoryWriter(self.memory)
        self._memory_writer.add(
            {
                "type": kind,
                "content": content[:8000],
                "importance": importance,
                "metadata": metadata,
            }
        )

    async def _leases(self, bus: MailBus) -> list[Any]:
        """Live leases for the prompt, shared by the agents for up to a second.

        The prompt's list is advice; ``acquire_lease`` is what enforces exclusion,
        so a view a second old is good enough and saves a read per task.
        """
        now = time.monotonic()
        if now - self._leases_at > 1.0:
            result = await self._quiet(bus.list_leases())
            self._leases_cache = list(result) if isinstance(result, list) else []
            self._leases_at = time.monotonic()
        return self._leases_cache

    async def _release_leases(self, bus: MailBus, task: Task, held: list[str]) -> None:
        if not held:
            return
        for path in held:
            await self._quiet(bus.release_lease(path))
        await self._publish(bus, MessageType.FILE_UNLOCK, {"task_id": task.id, "files": list(held)})
        held.clear()

    async def _publish(self, bus: MailBus, kind: MessageType, payload: dict[str, Any]) -> None:
        await self._quiet(bus.publish(kind, payload))

    @staticmethod
    async def _quiet(awaitable: Any) -> Any:
        """Await a best-effort store call: errors are logged, never raised."""
        try:
            return await awaitable
        except JetpackError as exc:
            logger.warning("store call failed: %s", exc)
        except Exception:
            logger.exception("store call failed")
        return None
