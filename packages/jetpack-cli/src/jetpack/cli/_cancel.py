"""``jetpack task cancel``: stop a task's attempt wherever it runs, through the mail bus.

The task store says who holds the task (``assigned_agent``); a direct
``coordination.request`` ``{"action": "cancel", "task_id", "fail", "reason"}``
reaches that agent on whatever machine it runs (kept in its inbox if it is
away). The agent stops the attempt (its process group killed, as on a forced
stop), hands the task back (no retry used) or with ``fail`` fails it (reason
``cancelled``), and answers with a ``coordination.response`` carrying the same
correlation id: see :class:`jetpack.cli.Agent`.

When no answer comes within the wait, the holder's presence decides: an agent
that is not on the bus any more (a killed run) cannot answer, so the claim is
ended from here (``update_task``: back to the queue, or failed with ``fail``);
a live agent that is slow to answer is left alone (the request waits in its
inbox) and the command says so. A task nobody runs is not touched, except that
``fail`` fails a waiting task so that it never runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass

from jetpack.cli._agent import CANCEL
from jetpack.shared import FailureType, MailBus, Message, MessageType, TaskStatus, TaskStore

__all__ = ["CancelOutcome", "cancel_task", "one_off_agent_id"]

POLL_S = 0.5
"""How often the task store is read while waiting for the agent's answer."""


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What ``cancel_task`` did: ``done`` is False when nothing was changed."""

    done: bool
    text: str


async def cancel_task(
    tasks: TaskStore,
    bus: MailBus,
    task_id: str,
    *,
    fail: bool = False,
    wait_s: float = 30.0,
    reason: str | None = None,
) -> CancelOutcome:
    """Cancel ``task_id`` (a whole id); ``bus`` must be open and speak for a one-off agent id."""
    task = await tasks.get_task(task_id)
    if task is None:
        return CancelOutcome(False, f"task {task_id!r} not found")
    why = reason or f"cancelled by {bus.agent_id}"
    if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        return CancelOutcome(False, f"{task.id} is already {task.status}: nothing to cancel")
    if task.status not in (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS):
        if not fail:
            return CancelOutcome(
                False,
                f"{task.id} is not running ({task.status}): nothing to stop "
                "(--fail fails it so that it never runs)",
            )
        await _fail_here(tasks, task.id, why)
        return CancelOutcome(True, f"{task.id} was not running ({task.status}): failed (cancelled)")
    holder = task.assigned_agent or ""
    answers: dict[str, Message] = {}
    arrived = asyncio.Event()

    def on_response(message: Message) -> None:
        if message.correlation_id is not None:
            answers[message.correlation_id] = message
            arrived.set()

    bus.subscribe(MessageType.COORDINATION_RESPONSE, on_response)
    try:
        request = await bus.send_to(
            holder,
            MessageType.COORDINATION_REQUEST,
            {"action": CANCEL, "task_id": task.id, "fail": fail, "reason": why},
        )
        reply = await _answer_or_change(
            tasks, task.id, holder, request.id, (answers, arrived), wait_s
        )
    finally:
        bus.unsubscribe(MessageType.COORDINATION_RESPONSE, on_response)
    if reply is not None:
        outcome = str(reply.payload.get("outcome", ""))
        text = str(reply.payload.get("text", outcome))
        return CancelOutcome(outcome in ("released", "failed"), f"{task.id} on {holder}: {text}")
    current = await tasks.get_task(task.id)
    if (
        current is None
        or current.assigned_agent != holder
        or current.status
        not in (
            TaskStatus.CLAIMED,
            TaskStatus.IN_PROGRESS,
        )
    ):
        state = current.status if current is not None else "deleted"
        return CancelOutcome(False, f"{task.id} is no longer run by {holder} (now {state})")
    online = {a.agent_id for a in await bus.list_agents()}
    if holder in online:
        return CancelOutcome(
            False,
            f"{holder} did not answer within {wait_s:g}s; the request waits in its inbox",
        )
    if fail:
        await _fail_here(tasks, task.id, why)
        return CancelOutcome(
            True, f"{task.id}: {holder} is gone; its claim ended, failed (cancelled)"
        )
    await tasks.update_task(task.id, {"status": TaskStatus.PENDING})
    await bus.publish(MessageType.TASK_AVAILABLE, {"task_id": task.id})
    return CancelOutcome(True, f"{task.id}: {holder} is gone; its claim ended, back in the queue")


async def _answer_or_change(
    tasks: TaskStore,
    task_id: str,
    holder: str,
    request_id: str,
    inbox: tuple[dict[str, Message], asyncio.Event],
    wait_s: float,
) -> Message | None:
    """The agent's answer, or None once the wait ends (or the task left the holder silently)."""
    answers, arrived = inbox
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    left_holder_at: float | None = None
    while request_id not in answers:
        now = loop.time()
        if now >= deadline or (left_holder_at is not None and now >= left_holder_at + 2.0):
            return None
        arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), POLL_S)
        if request_id in answers or left_holder_at is not None:
            continue
        current = await tasks.get_task(task_id)
        if current is None or current.assigned_agent != holder:
            left_holder_at = loop.time()  # its answer may be on its way: a moment more
    return answers[request_id]


async def _fail_here(tasks: TaskStore, task_id: str, reason: str) -> None:
    await tasks.update_task(
        task_id,
        {
            "status": TaskStatus.FAILED,
            "last_error": f"cancelled: {reason}"[:8000],
            "failure_type": FailureType.ERROR,
        },
    )


def one_off_agent_id() -> str:
    """The agent id ``jetpack task cancel`` speaks as (its answer comes back to it)."""
    return f"cli-cancel-{secrets.token_hex(4)}"
