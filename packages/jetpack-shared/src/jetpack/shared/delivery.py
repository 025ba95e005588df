"""Calling a bus's subscribers: each handler in turn, failures retried in the background.

Shared by the mail buses (jetpack-mcp-mail, jetpack-cf-mail), so handlers behave
the same on every backend. A handler that raises is logged and retried on its
own task with exponential back-off (``jetpack.shared.rules.retry_delay_ms``), so
it blocks neither the other handlers nor the next messages. After the last
attempt the (message, handler) pair goes to the bus's dead-letter sink.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from pydantic import Field

from jetpack.shared import JetpackModel, Message, MessageHandler
from jetpack.shared.rules import retry_delay_ms

__all__ = ["DeadLetter", "Dispatcher", "handler_name"]

logger = logging.getLogger("jetpack.shared.delivery")

DeadLetterSink = Callable[[Message, str, str, int], Awaitable[None]]


class DeadLetter(JetpackModel):
    """A message one of this agent's handlers failed to process on every attempt."""

    id: int = Field(description="Row id in the bus's dead-letter table.")
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

    def keys(self) -> set[str]:
        """The types (and ``"*"``) that have at least one handler."""
        return {key for key, handlers in self._handlers.items() if handlers}

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
