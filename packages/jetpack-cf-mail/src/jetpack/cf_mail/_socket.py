"""The agent's WebSocket to its project's MailboxDO: reconnects, resumes, queues publishes.

One :class:`MailSocket` per bus. A runner task keeps the connection up: a lost
connection is retried after a jittered exponential back-off and resumes from
the last seq received (``since=``), so the mailbox replays exactly what was
missed, in order. Received messages go to ``on_message`` (the bus queues them
for its handlers); a seq already received is never passed on twice.

Publishes go over the socket as ``pub`` frames carrying the message id the bus
chose. Each stays in the outbox until the mailbox answers ``ok``; after a
reconnect the outbox is sent again, and the mailbox recognises an id it
already stored (the first answer comes back, nothing is delivered twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from jetpack.cf_mail import _wire
from jetpack.shared import Message
from jetpack.shared.errors import (
    AuthError,
    ConflictError,
    JetpackError,
    UnavailableError,
    ValidationError,
)

__all__ = ["MailSocket"]

logger = logging.getLogger("jetpack.cf_mail")

_SEEN = 20_000
"""Seqs remembered to drop a message received twice (a replay that overlaps)."""
_CURSOR_DELAY = 0.25
"""Seconds a cursor report waits, so a busy stream sends one per batch, not one per message."""


def _frame_error(frame: dict[str, Any]) -> JetpackError:
    code = str(frame.get("code", "error"))
    message = str(frame.get("message", "refused"))
    if code in ("invalid", "bad_json"):
        return ValidationError(str(frame.get("field") or "message"), message)
    if code == "conflict":
        return ConflictError(message)
    return JetpackError(f"the mailbox refused the frame ({code}): {message}")


class MailSocket:
    """The live connection of one agent's bus (see the module docstring).

    Args:
        worker_url: the Worker's base URL (``http://`` or ``https://``).
        token: the bearer token (never logged).
        agent_id: the agent the socket speaks for.
        on_message: called (synchronously) with each new message, in seq order
            within a connection.
        backoff_base / backoff_max: seconds; the wait before reconnect ``n`` is
            ``min(max, base × 2^n)``, jittered down by up to half.
        open_timeout: seconds allowed for one connection attempt.
        ack_timeout: seconds a connected publish waits for the mailbox's answer.
    """

    def __init__(
        self,
        worker_url: str,
        token: str,
        agent_id: str,
        on_message: Callable[[Message], None],
        *,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        open_timeout: float = 30.0,
        ack_timeout: float = 10.0,
    ) -> None:
        self._url = worker_url.rstrip("/")
        self.__token = token
        self._agent_id = agent_id
        self._on_message = on_message
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._open_timeout = open_timeout
        self._ack_timeout = ack_timeout
        self._types: frozenset[str] = frozenset()
        self._pos: int | None = None  # everything relevant up to here was received
        self._from = 0  # broadcasts only after this (the mailbox's `hello`)
        self._seen: deque[int] = deque(maxlen=_SEEN)
        self._seen_set: set[int] = set()
        self._outbox: OrderedDict[str, Message] = OrderedDict()
        self._waiting: dict[str, asyncio.Future[Message | None]] = {}
        self._reads: list[str] = []
        self._cursor: int | None = None
        self._flush_at: asyncio.TimerHandle | None = None
        self._pending_subs: list[int] = []
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self.connections = 0
        """How many times the socket connected (reconnects = connections - 1)."""

    def __repr__(self) -> str:
        return f"MailSocket({self._url!r}, agent={self._agent_id!r})"

    @property
    def connected(self) -> bool:
        """True while a connection is open and its replay is done."""
        return self._ws is not None and self._ready.is_set()

    @property
    def position(self) -> int | None:
        """The seq up to which everything for this agent was received (None before the first)."""
        return self._pos

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and wait for the first replay to finish; refusals raise typed errors."""
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._closing = False
        self._runner = asyncio.create_task(self._run(), name=f"jetpack-cf-mail:{self._agent_id}")
        try:
            async with asyncio.timeout(self._open_timeout):
                await asyncio.shield(self._first)
        except TimeoutError:
            await self.close()
            raise UnavailableError(
                f"no WebSocket to {self._url} within {self._open_timeout:.0f} s"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop reconnecting and close the connection (pending publishes stay unsent)."""
        self._closing = True
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await self._flush_small(ws)
            with contextlib.suppress(Exception):
                await ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for future in self._waiting.values():
            if not future.done():
                future.set_result(None)
        self._waiting.clear()

    def drop(self) -> None:
        """Cut the current connection abruptly (tests); the runner reconnects by itself."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    # -- what the bus asks ----------------------------------------------------------------

    def set_types(self, types: Iterable[str]) -> None:
        """Receive broadcasts of these types (``*``: all) from now on."""
        chosen = frozenset(types)
        if chosen == self._types:
            return
        self._types = chosen
        ws = self._ws
        if ws is None:
            return  # the next connection asks for them
        since = self._pos if self._pos is not None else self._from
        self._pending_subs.append(since)
        asyncio.get_running_loop().create_task(self._send(ws, _wire.sub_frame(chosen, since)))

    async def publish(self, message: Message) -> Message | None:
        """Send ``message``; the stored message (with seq), or None while disconnected.

        A message not answered stays in the outbox and is sent again on
        reconnect, so it is published once however the connection fares.
        """
        self._outbox[message.id] = message
        ws = self._ws
        if ws is None:
            return None
        future: asyncio.Future[Message | None] = asyncio.get_running_loop().create_future()
        self._waiting[message.id] = future
        try:
            await self._send(ws, _wire.pub_frame(message.id, message))
            async with asyncio.timeout(self._ack_timeout):
                return await future
        except TimeoutError:
            logger.warning("mailbox did not answer publish %s in time; it stays queued", message.id)
            return None
        finally:
            self._waiting.pop(message.id, None)

    def mark_read(self, ids: list[str]) -> None:
        """Direct messages handled that need no acknowledgement (sent now or on reconnect)."""
        self._reads.extend(ids)
        self._kick()

    def report_cursor(self, seq: int) -> None:
        """The bus's handlers are done up to ``seq`` (sent within a moment, or on reconnect)."""
        self._cursor = seq if self._cursor is None else max(self._cursor, seq)
        self._kick(_CURSOR_DELAY)

    def _kick(self, delay: float = 0.0) -> None:
        if self._flush_at is not None or self._ws is None:
            return
        loop = asyncio.get_running_loop()
        self._flush_at = loop.call_later(delay, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_at = None
        ws = self._ws
        if ws is not None:
            asyncio.get_running_loop().create_task(self._flush_small(ws))

    async def _flush_small(self, ws: ClientConnection) -> None:
        reads, self._reads = self._reads, []
        cursor, self._cursor = self._cursor, None
        try:
            if reads:
                await self._send(ws, _wire.read_frame(reads))
            if cursor is not None:
                await self._send(ws, _wire.cursor_frame(cursor))
        except ConnectionClosed:
            self._reads = reads + self._reads
            if cursor is not None:
                self._cursor = max(cursor, self._cursor or 0)

    async def _send(self, ws: ClientConnection, frame: str) -> None:
        async with self._send_lock:
            try:
                await ws.send(frame)
            except ConnectionClosed:
                logger.debug("frame not sent: the connection closed")

    # -- the connection -----------------------------------------------------------------------

    def _connect_url(self) -> str:
        if self._pos is None:
            return _wire.subscribe_url(self._url, self._agent_id, self._types, None)
        since = min([self._pos, *self._pending_subs])
        url = _wire.subscribe_url(self._url, self._agent_id, self._types, since)
        return f"{url}&from={max(self._from, since)}" if self._from > since else url

    def _delay(self, attempt: int) -> float:
        delay = min(self._backoff_max, self._backoff_base * (2.0**attempt))
        return delay * random.uniform(0.5, 1.0)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping():
            try:
                async with connect(
                    self._connect_url(),
                    additional_headers={"Authorization": f"Bearer {self.__token}"},
                    open_timeout=self._open_timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                    max_size=64 * 1024 * 1024,
                    compression=None,
                    user_agent_header="jetpack-cf-mail",
                ) as ws:
                    self.connections += 1
                    attempt = 0
                    self._ws = ws
                    self._pending_subs.clear()
                    await self._resend(ws)
                    async for raw in ws:
                        self._handle(ws, raw)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                error = self._refusal(exc.response.status_code)
                if self._fail_first(error):
                    return
                logger.error("mail socket %s refused: %s; retrying", self._agent_id, error)
                attempt = max(attempt, 6)
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                logger.debug("mail socket %s lost: %s", self._agent_id, type(exc).__name__)
            finally:
                self._ws = None
                self._ready.clear()
                for future in self._waiting.values():
                    if not future.done():
                        future.set_result(None)
            if self._stopping():
                return
            delay = self._delay(attempt)
            attempt += 1
            logger.debug("mail socket %s reconnects in %.2f s", self._agent_id, delay)
            await asyncio.sleep(delay)

    def _stopping(self) -> bool:
        return self._closing

    def _refusal(self, status: int) -> JetpackError:
        if status in (401, 403):
            return AuthError(
                f"the Worker refused the mail socket ({status}); check JETPACK_API_TOKEN"
            )
        if status == 404:
            return JetpackError("the Worker has no mail module: redeploy it with jetpack-cf-mail")
        return UnavailableError(f"the Worker answered {status} to the mail socket")

    def _fail_first(self, error: JetpackError) -> bool:
        """Raise a refusal of the very first connection from :meth:`start`; True if so."""
        first = self._first
        if first is None or first.done() or self.connections > 0:
            return False
        if isinstance(error, UnavailableError):
            return False  # may pass: keep trying until the open timeout
        first.set_exception(error)
        return True

    async def _resend(self, ws: ClientConnection) -> None:
        """After (re)connecting: the unanswered publishes, in order, then reads and cursor."""
        for message in list(self._outbox.values()):
            await self._send(ws, _wire.pub_frame(message.id, message))
        await self._flush_small(ws)

    def _handle(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
            op = frame["op"]
        except (ValueError, KeyError, TypeError):
            logger.warning("mail socket %s: unreadable frame dropped", self._agent_id)
            return
        if op == "msg":
            self._received(Message.model_validate(frame["m"]))
        elif op == "ok":
            self._answered(frame["ref"], Message.model_validate(frame["m"]))
        elif op == "error":
            self._refused(frame)
        elif op == "hello":
            self._from = int(frame["from"])
        elif op == "more":
            asyncio.get_running_loop().create_task(self._send(ws, _wire.more_frame()))
        elif op == "ready":
            self._pos = max(self._pos or 0, int(frame["seq"]))
            self._ready.set()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
        elif op == "subok":
            with contextlib.suppress(ValueError):
                self._pending_subs.remove(int(frame["from"]))

    def _received(self, message: Message) -> None:
        seq = message.seq
        if seq is None or seq in self._seen_set:
            return
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(seq)
        self._seen_set.add(seq)
        self._pos = seq if self._pos is None else max(self._pos, seq)
        self._on_message(message)

    def _answered(self, ref: str, message: Message) -> None:
        self._outbox.pop(ref, None)
        future = self._waiting.get(ref)
        if future is not None and not future.done():
            future.set_result(message)

    def _refused(self, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        error = _frame_error(frame)
        if isinstance(ref, str):
            self._outbox.pop(ref, None)
            future = self._waiting.get(ref)
            if future is not None and not future.done():
                future.set_exception(error)
                return
        logger.error("mail socket %s: %s", self._agent_id, error)
