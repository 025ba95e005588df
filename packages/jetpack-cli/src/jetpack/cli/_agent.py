"""One agent: its id, mail bus, state and leases; it runs one task at a time.

:meth:`Agent.run_task` takes a claimed task to its end: lease the files it
names → prompt (memories, others' leases) → executor (claim and leases renewed
all along) → verify → complete or fail (the store applies the back-off) →
remember what was learned → publish events → release the leases. Nothing
between claim and finish can strand a task: an unexpected error fails the
attempt, a cancellation (shutdown) hands the claim back (``release_task``: no
retry used), a lost claim stops the attempt at once, and errors after
``complete_task`` never re-open the task.

Across machines and outages:

- **Reports survive outages.** The outcome of an attempt (complete, fail, hand
  back) is sent until the task store takes it, each try with the same
  idempotency key (:meth:`~jetpack.cli._network.Reachability.persist`), so a
  try whose answer was lost is answered, not applied twice. An outage never
  fails a task: the executor's work goes on while the store is away.
- **A lost claim keeps the work.** If the claim lapsed meanwhile (the store says
  ConflictError), the task is another agent's now: nothing is reported, and the
  attempt's worktree (with its changes committed on a ``jetpack/kept/...``
  branch) and its log stay for review; the ``claim_lost`` event says where.
- **Cancel from anywhere.** A direct ``coordination.request`` ``{"action":
  "cancel", "task_id": ...}`` (``jetpack task cancel``) stops the attempt (its
  process group is killed, as on a forced stop) and hands the task back, or with
  ``"fail": true`` fails it (reason ``cancelled``); the sender gets a
  ``coordination.response`` saying which.

Claiming, and when to stop, are the :class:`~jetpack.cli.Orchestrator`'s; the
services the agents share are in its :class:`~jetpack.cli._context.RunContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jetpack.cli._context import RunContext, StopReason
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
    Message,
    MessageType,
    Task,
    TaskStatus,
    repeatable,
)
from jetpack.shared.errors import ConflictError, JetpackError, UnavailableError

__all__ = ["CANCEL", "START_DELAY_S", "Agent", "AgentState", "ClaimLostError"]

logger = logging.getLogger(__name__)


START_DELAY_S = 0.25
"""An attempt still running after this long is marked ``in_progress`` in the task store."""
FLUSH_S = 5.0
"""At sign-off, how long the broadcasts still queued get to go out."""
CANCEL = "cancel"
"""The ``action`` of a ``coordination.request`` that stops a task's attempt."""


class ClaimLostError(JetpackError):
    """The store gave the task to another agent (the claim lapsed) before the outcome got in."""


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


@dataclass(slots=True)
class _Cancel:
    """A cancel request for the running attempt."""

    message: Message
    fail: bool
    reason: str


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
        self.claims = 0
        """Claims answered so far (names the idempotency scope of the next one)."""
        self.unsure = False
        """A claim may have been made without its answer (outage): check before claiming."""
        self._request_stop = request_stop
        self._attempt: asyncio.Task[None] | None = None
        self._attempt_id = ""
        self._cancel: _Cancel | None = None
        self._claim_lost = False
        self._reporting = False
        self._busy_changed = asyncio.Event()
        self._outgoing: asyncio.Queue[tuple[MessageType, dict[str, Any]]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        bus.subscribe(MessageType.COORDINATION_REQUEST, self._on_request)

    # ---------------------------------------------------------------- presence
    def presence(self) -> dict[str, Any]:
        """The heartbeat's info: run, process, host, task, leases, counts, heartbeat period."""
        state = self.state
        return {
            "run_id": self.context.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "executor": self.context.executor.name,
            "task_id": state.task_id,
            "task_title": state.task_title,
            "activity": state.activity[:200],
            "leases": self.held[:20],
            "completed": state.completed,
            "failed": state.failed,
            "heartbeat_s": self.context.settings.heartbeat_s,
        }

    async def heartbeats(self) -> None:
        """Announce the agent, then heartbeat until cancelled.

        Every ``heartbeat_s`` while it runs a task, every ``idle_heartbeat_s``
        while idle (on the edge each heartbeat is a request); taking a task
        after a long idle spell sends one at once, so other runs see a holder's
        heartbeat move within ``heartbeat_s`` (see :mod:`jetpack.cli._drain`).
        """
        settings = self.context.settings
        await self._publish(MessageType.AGENT_STARTED, {"run_id": self.context.run_id})
        self._emit("started", text=f"executor {self.context.executor.name}")
        loop = asyncio.get_running_loop()
        while True:
            self._busy_changed.clear()
            await self.context.network.quietly(
                "mail", self.bus.send_heartbeat(self.state.status, self.presence())
            )
            beat = loop.time()
            while True:
                busy = self.state.status is AgentStatus.BUSY
                period = settings.heartbeat_s if busy else settings.idle_heartbeat_s
                left = beat + period - loop.time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._busy_changed.wait()
                self._busy_changed.clear()

    async def sign_off(self) -> None:
        """Say the agent is offline and stopped (its last words on the bus)."""
        self.state.status = AgentStatus.OFFLINE
        await self.context.network.quietly(
            "mail", self.bus.send_heartbeat(AgentStatus.OFFLINE, self.presence())
        )
        await self._publish(MessageType.AGENT_STOPPED, {"run_id": self.context.run_id})
        await self._flush(FLUSH_S if self.context.network.is_up("mail") else 0.5)
        self._emit("stopped")

    # ---------------------------------------------------------------- one task
    async def run_task(self, task: Task) -> None:
        """Run a task this agent has claimed, to its end (see the module docstring)."""
        state = self.state
        state.status, state.task_id, state.task_title = AgentStatus.BUSY, task.id, task.title
        state.task_started, state.activity = time.monotonic(), "claimed"
        self._busy_changed.set()
        state.log = AttemptLog(
            self.context.project_dir, task.id, self.agent_id, self.context.run_id
        )
        state.outcome = "ended: the claim was lost to another agent"
        self._attempt_id = secrets.token_hex(6)
        self._cancel, self._claim_lost, self._reporting = None, False, False
        self._emit("claimed", task.id, task.title)
        await self._publish(MessageType.TASK_CLAIMED, {"task_id": task.id, "title": task.title})
        files = files_of(task)
        attempt = self._attempt = asyncio.create_task(self._attempt_at(task, files))
        keepalive = asyncio.create_task(self._keep_alive(task))
        try:
            await asyncio.wait({attempt, keepalive}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done() and not self._reporting:
                # The claim was lost: someone else owns the task now.
                self._claim_lost = True
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
                self._lost(task, "stopped the attempt")
            else:
                await asyncio.wait({attempt})
                cancel = self._pending_cancel()
                if attempt.cancelled() and cancel is not None:
                    await self._cancelled(task, cancel)
                else:
                    attempt.result()
        except asyncio.CancelledError:
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            await asyncio.shield(self._interrupt(task))
            raise
        except ClaimLostError as exc:
            self._lost(task, str(exc))
        except Exception as exc:  # a bug or a store refusal: never strand the task
            logger.exception("%s: attempt at %s failed unexpectedly", self.agent_id, task.id)
            state.outcome = f"failed: orchestrator error: {exc}"
            failing = self.context.tasks.fail_task(task.id, self.agent_id, f"orchestrator: {exc}")
            await self.context.network.quietly("tasks", failing)
            self._emit("error", task.id, str(exc))
        finally:
            self._attempt = None
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
            await asyncio.shield(self._release_leases(task))
            if state.log is not None:
                state.log.write(state.outcome)
            state.status, state.task_id, state.task_title = AgentStatus.IDLE, None, None
            state.task_started, state.activity, state.log = None, "", None

    def _pending_cancel(self) -> _Cancel | None:
        """The cancel request that stopped the attempt, if one did."""
        return self._cancel

    def _scope(self, task: Task, what: str) -> str:
        """The idempotency scope of one report of this attempt."""
        return f"{self.agent_id}:{task.id}:{self._attempt_id}:{what}"

    async def _keep_alive(self, task: Task) -> None:
        """Renew the claim and leases every third of their lifetime; return if the claim is lost.

        While the task store does not answer, renewals keep trying at the same
        pace (the outage is said once, by the run); the attempt goes on.
        """
        settings = self.context.settings
        network = self.context.network
        period = min(settings.claim_ttl_ms, settings.lease_ttl_ms) / 3000
        while True:
            await asyncio.sleep(period)
            try:
                await network.call(
                    "tasks",
                    self.context.tasks.renew_claim(
                        task.id, self.agent_id, ttl_ms=settings.claim_ttl_ms
                    ),
                )
            except ConflictError:
                # Lost, or (while reporting) our own report got in: run_task tells which.
                if not self._reporting:
                    logger.warning("%s: lost the claim on %s", self.agent_id, task.id)
                return
            except UnavailableError:
                pass
            except JetpackError as exc:
                logger.warning(
                    "%s: renewing the claim on %s failed: %s", self.agent_id, task.id, exc
                )
            for path in list(self.held):
                await network.quietly("mail", self.bus.renew_lease(path, settings.lease_ttl_ms))

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
                    ok = await self.context.network.call(
                        "mail", self.bus.acquire_lease(path, settings.lease_ttl_ms, True)
                    )
                except ConflictError:
                    ok = False
                except UnavailableError:  # the bus is away: wait for it like for a holder
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
            await self.context.network.quietly("mail", self.bus.release_lease(path))
        await self._publish(MessageType.FILE_UNLOCK, {"task_id": task.id, "files": list(self.held)})
        self.held.clear()

    async def _attempt_at(self, task: Task, files: list[str]) -> None:
        context, state = self.context, self.state
        if files and not await self._acquire_leases(task, files):
            await self._release_leases(task)
            await self._hand_back(task)
            state.outcome = "handed back: its files are leased by another agent"
            self._emit("released", task.id, "files leased by another agent")
            await self._publish(MessageType.TASK_AVAILABLE, {"task_id": task.id})
            await asyncio.sleep(min(context.settings.poll_s, 1.0))
            return
        memories, leases = await asyncio.gather(context.memories(task), context.leases(self.bus))
        writing = asyncio.Event()
        starter = asyncio.create_task(self._mark_started(task, writing))
        tree: Worktree | None = None
        keep = False
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
                # Merge only work whose claim still holds: a lapsed claim keeps the tree.
                self._reporting = True
                if not await self._still_held(task):
                    keep = True
                    raise ClaimLostError("the claim lapsed before the merge")
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
        except asyncio.CancelledError:
            keep = self._claim_lost
            raise
        finally:
            if not writing.is_set():
                starter.cancel()
            await asyncio.gather(starter, return_exceptions=True)
            if tree is not None and context.worktrees is not None:
                with contextlib.suppress(GitError):
                    if keep:
                        await asyncio.shield(self._keep(task, tree))
                    else:
                        await asyncio.shield(context.worktrees.remove(tree))
        await self._finish(task, result)

    async def _still_held(self, task: Task) -> bool:
        """Renew the claim (waiting out an outage): False if it lapsed."""
        settings, network = self.context.settings, self.context.network
        try:
            await network.persist(
                "tasks",
                self._scope(task, "confirm"),
                lambda: self.context.tasks.renew_claim(
                    task.id, self.agent_id, ttl_ms=settings.claim_ttl_ms
                ),
            )
        except ConflictError:
            return False
        return True

    async def _keep(self, task: Task, tree: Worktree) -> None:
        """Keep a worktree whose claim was lost, for review; say where."""
        assert self.context.worktrees is not None
        label = f"{self.agent_id}-{self._attempt_id}"
        kept = await self.context.worktrees.keep(tree, label)
        text = f"worktree kept for review at {kept.path} (branch {kept.branch})"
        self.state.outcome = f"claim lost: {text}"
        if self.state.log is not None:
            self.state.log.add(text)
        self._emit("kept", task.id, text)

    async def _mark_started(self, task: Task, writing: asyncio.Event) -> None:
        """Mark the task ``in_progress`` once its attempt has run for START_DELAY_S.

        Attempts that end sooner go from claimed to completed directly, saving a
        task-store write, the single biggest cost of a short task.
        """
        await asyncio.sleep(START_DELAY_S)
        writing.set()
        with self._repeat(task, "start"):
            await self.context.network.quietly(
                "tasks", self.context.tasks.start_task(task.id, self.agent_id)
            )

    def _repeat(self, task: Task, what: str) -> contextlib.AbstractContextManager[None]:
        return repeatable(self._scope(task, what))

    def _progress(self, task: Task, event: ProgressEvent) -> None:
        text = f"{event.kind}: {event.text}" if event.text else event.kind
        hint = event.data.get("hint") if event.data else None
        if self.state.log is not None:
            self.state.log.add(f"{text} {hint}" if hint else text)
        self.state.activity = text[:200]
        self._emit("progress", task.id, text[:300])

    # ------------------------------------------------------------ its outcome
    async def _complete(self, task: Task, payload: dict[str, Any]) -> None:
        """complete_task until the store takes it; ClaimLostError if the task is not ours now.

        Accepts a task this agent already completed (its MCP tools, or a try
        whose answer was lost).
        """
        network, tasks = self.context.network, self.context.tasks
        scope = self._scope(task, "complete")
        while True:
            try:
                await network.persist(
                    "tasks",
                    scope,
                    lambda: tasks.complete_task(task.id, self.agent_id, result=payload),
                )
                return
            except ConflictError:
                current = await network.persist(
                    "tasks", self._scope(task, "check"), lambda: tasks.get_task(task.id)
                )
                if _completed_by(current, self.agent_id):
                    logger.info("task %s was already completed by its agent", task.id)
                    return
                if not _held_by(current, self.agent_id):
                    raise ClaimLostError("the claim lapsed before the completion got in") from None
                # Still ours: the first try is still being answered (409 in_progress).
                await asyncio.sleep(1.0)

    async def _fail(self, task: Task, error: str, failure: FailureType) -> Task:
        """fail_task until the store takes it; ClaimLostError if the task is not ours now."""
        network, tasks = self.context.network, self.context.tasks
        while True:
            try:
                return await network.persist(
                    "tasks",
                    self._scope(task, "fail"),
                    lambda: tasks.fail_task(task.id, self.agent_id, error, failure),
                )
            except ConflictError:
                current = await network.persist(
                    "tasks", self._scope(task, "check"), lambda: tasks.get_task(task.id)
                )
                if (
                    current is not None
                    and current.last_error == error
                    and not _held_by(current, self.agent_id)
                ):
                    return current  # our failure got in; its answer was lost
                if not _held_by(current, self.agent_id):
                    raise ClaimLostError("the claim lapsed before the failure got in") from None
                await asyncio.sleep(1.0)

    async def _hand_back(self, task: Task) -> bool:
        """release_task until the store takes it (no retry used); False if not held any more."""
        return await self.context.network.persist(
            "tasks",
            self._scope(task, "release"),
            lambda: self.context.tasks.release_task(task.id, self.agent_id),
        )

    async def _finish(self, task: Task, result: ExecutionResult) -> None:
        context, state = self.context, self.state
        self._reporting = True
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
        updated = await self._fail(task, error, failure)
        retry: dict[str, Any] = {}
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
            retry["not_before"] = updated.not_before.isoformat() if updated.not_before else None
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
                **retry,
            },
        )

    def _lost(self, task: Task, why: str) -> None:
        """The claim was lost: the task runs again elsewhere; this attempt's output is kept."""
        state = self.state
        where = []
        if state.outcome.startswith("claim lost:"):
            where.append(state.outcome.removeprefix("claim lost: "))
        else:
            state.outcome = f"claim lost ({why}); the task runs again elsewhere"
        where.append(f"log in {self.context.project_dir / '.jetpack' / 'logs'}")
        self._emit("claim_lost", task.id, f"{why}; kept for review: {', '.join(where)}")

    async def _run_failure(self, task: Task, why: str) -> None:
        """Not the task's fault: hand it back (no retry used) and stop the run."""
        summary = self.context.summary
        await self._hand_back(task)
        summary.interrupted.append(task.id)
        self._emit("interrupted", task.id, "handed back (no retry used)")
        await self._publish(MessageType.TASK_INTERRUPTED, {"task_id": task.id})
        if summary.fatal is None:
            summary.fatal = why
            self._emit("fatal", task.id, why)
        self._request_stop(StopReason.FATAL, why)

    async def _interrupt(self, task: Task) -> None:
        """Hand an interrupted task back: ready again, no retry used (best effort: stopping)."""
        self.state.outcome = "interrupted: handed back (no retry used)"
        with self._repeat(task, "release"):
            released = await self.context.network.quietly(
                "tasks", self.context.tasks.release_task(task.id, self.agent_id)
            )
        if released:
            self.context.summary.interrupted.append(task.id)
            self._emit("interrupted", task.id, "handed back (no retry used)")
            await self._publish(MessageType.TASK_INTERRUPTED, {"task_id": task.id})

    # ------------------------------------------------------------------ cancel
    async def _on_request(self, message: Message) -> None:
        """A ``coordination.request`` to this agent: ``cancel`` stops the running attempt."""
        if message.to_agent != self.agent_id:
            return  # a broadcast: not for one agent
        payload = message.payload
        task_id = payload.get("task_id")
        if payload.get("action") != CANCEL or not isinstance(task_id, str):
            await self._ack(message)
            return
        attempt = self._attempt
        if attempt is None or attempt.done() or self.state.task_id != task_id or self._reporting:
            status = "finishing" if self._reporting and self.state.task_id == task_id else None
            await self._answer(message, task_id, "not_running", status or "not running here")
            return
        reason = str(payload.get("reason") or f"cancelled by {message.from_agent}")[:500]
        self._cancel = _Cancel(message, bool(payload.get("fail")), reason)
        self._emit("cancelling", task_id, reason)
        attempt.cancel()

    async def _cancelled(self, task: Task, cancel: _Cancel) -> None:
        """The attempt was stopped by a cancel request: hand the task back or fail it."""
        state, tasks, network = self.state, self.context.tasks, self.context.network
        if cancel.fail:
            current = await network.persist(
                "tasks", self._scope(task, "check"), lambda: tasks.get_task(task.id)
            )
            if _held_by(current, self.agent_id):
                await network.persist(
                    "tasks",
                    self._scope(task, "cancel"),
                    lambda: tasks.update_task(
                        task.id,
                        {
                            "status": TaskStatus.FAILED,
                            "last_error": f"cancelled: {cancel.reason}",
                            "failure_type": FailureType.ERROR,
                        },
                    ),
                )
                outcome = "failed"
                state.failed += 1
                self.context.summary.failed.append(task.id)
                await self._publish(
                    MessageType.TASK_FAILED,
                    {"task_id": task.id, "error": "cancelled", "failure_type": "error"},
                )
            else:
                outcome = "not_running"
        else:
            released = await self._hand_back(task)
            outcome = "released" if released else "not_running"
            if released:
                self.context.summary.interrupted.append(task.id)
                await self._publish(MessageType.TASK_INTERRUPTED, {"task_id": task.id})
        text = {
            "failed": "cancelled: failed (reason: cancelled)",
            "released": "cancelled: handed back (no retry used)",
            "not_running": "cancelled, but the claim had already ended",
        }[outcome]
        state.outcome = f"{text}; {cancel.reason}"
        self._emit("cancelled", task.id, text)
        await self._answer(cancel.message, task.id, outcome, text)

    async def _answer(self, request: Message, task_id: str, outcome: str, text: str) -> None:
        """Tell the sender of a request what happened, and acknowledge the request."""
        await self.context.network.quietly(
            "mail",
            self.bus.send_to(
                request.from_agent,
                MessageType.COORDINATION_RESPONSE,
                {"action": CANCEL, "task_id": task_id, "outcome": outcome, "text": text},
                correlation_id=request.id,
                ack_required=False,
            ),
        )
        await self._ack(request)

    async def _ack(self, message: Message) -> None:
        if message.ack_required:
            await self.context.network.quietly("mail", self.bus.acknowledge(message.id))

    # ---------------------------------------------------------------- helpers
    def _emit(self, kind: str, task_id: str | None = None, text: str = "") -> None:
        self.context.emit(kind, self.agent_id, task_id, text)

    async def _publish(self, kind: MessageType, payload: dict[str, Any]) -> None:
        """Broadcast in the background, in order: the agent never waits for the mail bus."""
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all(), name=f"{self.agent_id}-mail")
        self._outgoing.put_nowait((kind, payload))

    async def _send_all(self) -> None:
        while True:
            kind, payload = await self._outgoing.get()
            try:
                await self.context.network.quietly("mail", self.bus.publish(kind, payload))
            finally:
                self._outgoing.task_done()

    async def _flush(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the queued broadcasts to go out; then stop sending."""
        sender, self._sender = self._sender, None
        if sender is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._outgoing.join()
        if self._outgoing.qsize():
            logger.warning(
                "%s: %d broadcasts not sent (the mail bus is away)",
                self.agent_id,
                self._outgoing.qsize(),
            )
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


def _held_by(task: Task | None, agent_id: str) -> bool:
    return (
        task is not None
        and task.status in (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS)
        and task.assigned_agent == agent_id
    )


def _completed_by(task: Task | None, agent_id: str) -> bool:
    """The task is completed by this agent (its report, or its own MCP tools, got in)."""
    if task is None or task.status is not TaskStatus.COMPLETED:
        return False
    result = task.metadata.get("result")
    by = result.get("agent_id") if isinstance(result, dict) else None
    return task.assigned_agent == agent_id or by == agent_id
