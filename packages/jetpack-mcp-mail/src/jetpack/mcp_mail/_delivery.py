"""Delivery: the loop that reads new messages, and the subscribers it calls.

:class:`Delivery` runs one bus's loop: the agent's backlog of unacknowledged
direct messages once, then the stream after its position, woken by a datagram
(:mod:`~jetpack.mcp_mail._wake`) or the fallback poll; between batches it
saves its position and runs the bounded retention cleanup.

:class:`Dispatcher` calls each matching handler in turn. A handler that raises
is logged and retried on its own task with exponential back-off
(``jetpack.shared.rules.retry_delay_ms``), so it blocks neither the other
handlers nor the next messages. After the last attempt the (message, handler)
pair goes to the dead-letter list.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from pydantic import Field

from jetpack.mcp_mail import _reads, _writes
from jetpack.shared import JetpackModel, Message, MessageHandler, to_ms, utcnow
from jetpack.shared.rules import retry_delay_ms
from jetpack.shared.sqlite import Database

__all__ = ["DeadLetter", "Delivery", "Dispatcher", "handler_name"]

logger = logging.getLogger("jetpack.mcp_mail")

DeadLetterSink = Callable[[Message, str, str, int], Awaitable[None]]


class DeadLetter(JetpackModel):
    """A message one of this agent's handlers failed to process on every attempt."""

    id: int = Field(description="Row id in the dead_letters table.")
    message: Message = Field(description="The message, as delivered.")
    handler: str = Field(description="Qualified name of the handler that failed.")
    error: str = Field(description="The last error, as ``Type: text``.")
    attempts: int = Field(ge=1, description="How many times the handler was called.")
    failed_at: datetime = Field(description="When it was given up (UTC).")


def handler_name(handler: MessageHandler) -> str:
    """A readable name for logs and the dead-letter list."""
    module = getattr(handler, "__module__", None) or ""
    name = getattr(handler, "__qualname__", None) or repr(handler)
    return f"{module}.{name}" if module else name


class Dispatcher:
    """The subscribers of one bus and the retries in flight."""

    def __init__(self, *, attempts: int, retry_base_ms: int, dead_letter: DeadLetterSink) -> None:
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._attempts = attempts
        self._retry_base_ms = retry_base_ms
        self._dead_letter = dead_letter
        self._retries: set[asyncio.Task[None]] = set()

    def add(self, key: str, handler: MessageHandler) -> None:
        """Subscribe ``handler`` to ``key`` (a type value or ``"*"``)."""
        self._handlers.setdefault(key, []).append(handler)

    def remove(self, key: str, handler: MessageHandler) -> None:
        """Unsubscribe ``handler`` from ``key``; unknown pairs are ignored."""
        handlers = self._handlers.get(key)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def handlers_for(self, message: Message) -> list[MessageHandler]:
        """The handlers of the message's type, then the ``"*"`` handlers."""
        return [*self._handlers.get(message.type.value, ()), *self._handlers.get("*", ())]

    async def dispatch(self, message: Message) -> tuple[int, bool]:
        """Call every matching handler once; return (how many, whether all succeeded)."""
        handlers = self.handlers_for(message)
        all_ok = True
        for handler in handlers:
            error = await self._call(handler, message)
            if error is not None:
                all_ok = False
                self._schedule_retry(handler, message, error)
        return len(handlers), all_ok

    async def _call(self, handler: MessageHandler, message: Message) -> BaseException | None:
        try:
            result = handler(message)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            return exc
        return None

    def _schedule_retry(
        self, handler: MessageHandler, message: Message, error: BaseException
    ) -> None:
        name = handler_name(handler)
        if self._attempts <= 1:
            logger.error("handler %s failed on %s (%s): %r", name, message.id, message.type, error)
            task = asyncio.create_task(self._give_up(name, message, error, 1))
        else:
            logger.warning(
                "handler %s failed on %s (%s), attempt 1/%d: %r",
                name,
                message.id,
                message.type,
                self._attempts,
                error,
            )
            task = asyncio.create_task(self._retry(handler, name, message))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _retry(self, handler: MessageHandler, name: str, message: Message) -> None:
        error: BaseException | None = None
        for attempt in range(2, self._attempts + 1):
            await asyncio.sleep(retry_delay_ms(attempt - 2, self._retry_base_ms) / 1000)
            error = await self._call(handler, message)
            if error is None:
                logger.info("handler %s succeeded on %s at attempt %d", name, message.id, attempt)
                return
            logger.warning(
                "handler %s failed on %s, attempt %d/%d: %r",
                name,
                message.id,
                attempt,
                self._attempts,
                error,
            )
        assert error is not None
        await self._give_up(name, message, error, self._attempts)

    async def _give_up(
        self, name: str, message: Message, error: BaseException, attempts: int
    ) -> None:
        text = f"{type(error).__name__}: {error}"
        logger.error(
            "handler %s gave up on %s after %d attempts: %s", name, message.id, attempts, text
        )
        try:
            await self._dead_letter(message, name, text, attempts)
        except Exception:
            logger.exception("could not record dead letter for %s", message.id)

    @property
    def pending_retries(self) -> int:
        """Retries still in flight."""
        return len(self._retries)

    async def close(self, timeout: float = 0.0) -> None:
        """Cancel pending retries (after waiting up to ``timeout`` seconds for them)."""
        if self._retries and timeout > 0:
            await asyncio.wait(set(self._retries), timeout=timeout)
        for task in list(self._retries):
            task.cancel()
        if self._retries:
            await asyncio.gather(*self._retries, return_exceptions=True)
        self._retries.clear()


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
