"""Wake-ups of a run's idle agents: one mail subscription per run, not a claim per agent per second.

An agent whose ``claim_next`` found nothing waits on the run's :class:`WorkSignal`.
Each *kick* wakes one waiting agent (oldest first), which claims once; an agent
whose claim succeeds passes the wake-up on to the next waiting agent (there may
be more work), so a burst of new tasks reaches every agent while one new task
costs one claim, not one per idle agent. Kicks come from:

- the mail bus (one subscription per run, on its first agent's bus): a
  ``task.created`` (its ``count`` wakes that many), and what can ready a task:
  ``task.completed`` (a dependant), ``task.interrupted`` and ``task.available``
  (handed back), ``task.updated`` (reopened, retried by hand),
  ``task.retry_scheduled`` (at its ``not_before``). The run's own completions
  need no kick: the agent that completed claims again at once;
- due times the run learns: a retry's back-off ending, another run's lapsing
  claim (see :mod:`jetpack.cli._drain`);
- the fallback: after ``poll_s`` without any kick, one agent claims (work that
  arrived without a message: another tool writing the store, a lapsed claim).

A kick while an agent's claim is in flight is not lost: the agent notes the
signal's :attr:`~WorkSignal.generation` before claiming, and :meth:`WorkSignal.wait`
returns at once if it moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import deque
from collections.abc import Collection
from datetime import datetime

from jetpack.shared import MailBus, Message, MessageType, utcnow

__all__ = ["WAKE_TYPES", "WorkSignal", "seconds_until"]

logger = logging.getLogger(__name__)

WAKE_TYPES = (
    MessageType.TASK_CREATED,
    MessageType.TASK_COMPLETED,
    MessageType.TASK_INTERRUPTED,
    MessageType.TASK_AVAILABLE,
    MessageType.TASK_UPDATED,
    MessageType.TASK_RETRY_SCHEDULED,
)
"""Messages after which a task may be ready."""

MAX_WAKE = 64
"""The most agents one message wakes (``[agents] count`` is at most 64)."""


def seconds_until(when: datetime | str | None) -> float | None:
    """Seconds from now until ``when`` (a datetime or ISO text; negative if past), or None."""
    if when is None:
        return None
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            return None
    if when.tzinfo is None:
        return None
    return (when - utcnow()).total_seconds()


class WorkSignal:
    """Parks a run's idle agents and wakes them when work may have appeared.

    ``own`` holds the run's agent ids: their completions and hand-backs kick
    nobody (the agent itself claims again). ``fallback_s`` is the claim made
    after that long without a kick.
    """

    def __init__(self, *, fallback_s: float, own: Collection[str] = ()) -> None:
        self.fallback_s = fallback_s
        self.own = frozenset(own)
        self.generation = 0
        """Moves with every kick; an agent compares it before and after a claim."""
        self.kicks = 0
        """Kicks so far (tests, benchmarks)."""
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._due: list[float] = []
        self._changed = asyncio.Event()
        self._last_kick = 0.0
        self._closed = False
        self._timer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ wiring
    def attach(self, bus: MailBus) -> None:
        """Subscribe to the messages that can ready a task (before the bus opens)."""
        for kind in WAKE_TYPES:
            bus.subscribe(kind, self.on_message)

    def start(self) -> None:
        """Start the timer of due times and the fallback claim."""
        self._last_kick = asyncio.get_running_loop().time()
        if self._timer is None:
            self._timer = asyncio.create_task(self._run_timer(), name="jetpack-wakeups")

    def release(self) -> None:
        """Wake every waiting agent for good: the run stops (idempotent)."""
        self._closed = True
        self.generation += 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def close(self) -> None:
        """:meth:`release`, and stop the timer (idempotent)."""
        self.release()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    # ------------------------------------------------------------------- kicks
    def on_message(self, message: Message) -> None:
        """A message of :data:`WAKE_TYPES` arrived."""
        payload = message.payload
        if message.type is MessageType.TASK_RETRY_SCHEDULED:
            delay = seconds_until(payload.get("not_before"))
            if delay is not None and delay > 0:
                self.due_in(delay)
                return
        if message.from_agent in self.own and message.type is not MessageType.TASK_CREATED:
            return
        count = payload.get("count", 1) if message.type is MessageType.TASK_CREATED else 1
        self.kick(count if isinstance(count, int) and count > 0 else 1)

    def kick(self, n: int = 1) -> None:
        """Work may have appeared: wake up to ``n`` waiting agents."""
        if self._closed:
            return
        self.generation += 1
        self.kicks += 1
        with contextlib.suppress(RuntimeError):  # no running loop (a test calling it bare)
            self._last_kick = asyncio.get_running_loop().time()
        self._wake(min(n, MAX_WAKE))
        self._changed.set()

    def pass_on(self) -> None:
        """A claim succeeded: the next waiting agent looks for more (no generation change)."""
        self._wake(1)

    def due_in(self, seconds: float) -> None:
        """Kick once ``seconds`` from now (a back-off ending, a claim lapsing)."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        heapq.heappush(self._due, loop.time() + max(0.0, seconds))
        self._changed.set()

    @property
    def waiting(self) -> int:
        """Agents waiting now."""
        return sum(1 for w in self._waiters if not w.done())

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    # -------------------------------------------------------------------- wait
    async def wait(self, since: int) -> None:
        """Wait for a kick, unless one came since ``generation`` was ``since`` (or closed)."""
        if self._closed or self.generation != since:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def _run_timer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            now = loop.time()
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
                self.kick(1)
            fallback = self._last_kick + self.fallback_s
            if fallback <= now:
                if self.waiting:
                    self.kick(1)
                else:
                    self._last_kick = now
                continue
            deadline = min(fallback, self._due[0]) if self._due else fallback
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - now)):
                    await self._changed.wait()
