"""The delivery loop of one bus: the messages it reads, and when.

:class:`Delivery` runs one bus's loop: the agent's backlog of unacknowledged
direct messages once, then the stream after its position, woken by a datagram
(:mod:`~jetpack.mcp_mail._wake`) or the fallback poll; between batches it
saves its position and runs the bounded retention cleanup. The subscribers
are called through :class:`jetpack.shared.delivery.Dispatcher` (the same
handler calls, retries and dead letters as on every mail backend).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from jetpack.mcp_mail import _reads, _writes
from jetpack.shared import Message, to_ms, utcnow
from jetpack.shared.delivery import Dispatcher
from jetpack.shared.sqlite import Database

__all__ = ["Delivery"]

logger = logging.getLogger("jetpack.mcp_mail")


class Delivery:
    """The delivery loop of one bus, from its start position (``pos``) on."""

    def __init__(
        self,
        db: Database[None],
        agent_id: str,
        dispatcher: Dispatcher,
        *,
        pos: int,
        poll_interval_ms: int,
        batch_size: int,
        cleanup_interval_ms: int,
        cleanup: Callable[[], Awaitable[int]],
    ) -> None:
        self.pos = pos
        self._saved_pos = pos
        self._db = db
        self._agent_id = agent_id
        self._dispatcher = dispatcher
        self._poll = poll_interval_ms / 1000
        self._batch_size = batch_size
        self._cleanup_every = cleanup_interval_ms / 1000
        self._cleanup = cleanup
        self._runner: asyncio.Task[None] | None = None

    def start(self, wake: asyncio.Event) -> None:
        """Start the loop; ``wake`` is set by the bus's wake-up listener."""
        self._runner = asyncio.create_task(self._run(wake), name=f"jetpack-mail:{self._agent_id}")

    async def stop(self) -> int:
        """Stop the loop (idempotent); the position reached."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        return self.pos

    async def _run(self, wake: asyncio.Event) -> None:
        await asyncio.sleep(0)  # let the opener subscribe before the backlog goes out
        next_cleanup = 0.0
        backlog_done = False
        while True:
            try:
                if not backlog_done:
                    await self._deliver(
                        await self._db.read(_reads.backlog, self._agent_id, self.pos)
                    )
                    backlog_done = True
                wake.clear()
                batch = await self._db.read(
                    _reads.stream, self._agent_id, self.pos, self._batch_size
                )
                if batch:
                    await self._deliver(batch)
                    continue
                if time.monotonic() >= next_cleanup:
                    next_cleanup = time.monotonic() + self._cleanup_every
                    await self._cleanup()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("mail bus %s: delivery loop error; retrying", self._agent_id)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
            # that races with the wake-up, and stop() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await wake.wait()

    async def _deliver(self, batch: list[Message]) -> None:
        read: list[str] = []
        for message in batch:
            handled, ok = await self._dispatcher.dispatch(message)
            if message.to_agent is not None and not message.ack_required and handled and ok:
                read.append(message.id)
            if message.seq is not None and message.seq > self.pos:
                self.pos = message.seq
        if read or self.pos != self._saved_pos:
            pos = self.pos
            now = to_ms(utcnow())
            await self._db.write(_writes.save_progress, self._agent_id, pos, read, now)
            self._saved_pos = pos
