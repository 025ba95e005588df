"""The agent's WebSocket to its project's MailboxDO: resumes from its last seq, queues publishes.

A :class:`MailSocket` is a :class:`~jetpack.cf_mail._link.Link` (reconnects
with jittered back-off, forever). Each connection resumes from the last seq
received (``since=``), so the mailbox replays exactly what was missed, in
order, before anything live; the link is established at the mailbox's
``ready``. Received messages go to ``on_message`` (the bus queues them for its
handlers); a seq already received is never passed on twice.

Publishes go as ``pub`` frames carrying the message id the bus chose. Each
stays in the outbox until the mailbox answers ``ok``; after a reconnect the
outbox is sent again, in order, and the mailbox recognises an id it already
stored (it answers as before and delivers nothing twice).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from jetpack.cf_mail import _wire
from jetpack.cf_mail._link import Link, frame_error
from jetpack.shared import Message

__all__ = ["MailSocket"]

logger = logging.getLogger("jetpack.cf_mail")

_SEEN = 20_000
"""Seqs remembered to drop a message received twice (replays that overlap)."""
_CURSOR_DELAY = 0.25
"""Seconds a cursor report waits, so a busy stream sends one per batch, not one per message."""


class MailSocket(Link):
    """The live message stream of one agent's bus (see the module docstring).

    Args:
        base_url, token, agent_id: as for :class:`~jetpack.cf_mail._link.Link`.
        on_message: called (synchronously) with each new message.
        ack_timeout: seconds a connected publish waits for the mailbox's answer.
        **link: the other :class:`~jetpack.cf_mail._link.Link` options.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        agent_id: str,
        on_message: Callable[[Message], None],
        *,
        ack_timeout: float = 10.0,
        **link: Any,
    ) -> None:
        super().__init__(base_url, token, _wire.SUBSCRIBE, agent_id, **link)
        self._on_message = on_message
        self._ack_timeout = ack_timeout
        self._types: frozenset[str] = frozenset()
        self._pos: int | None = None  # everything relevant up to here was received
        self._from = 0  # broadcasts only after this (the mailbox's `hello`)
        self._seen: deque[int] = deque(maxlen=_SEEN)
        self._seen_set: set[int] = set()
        self._outbox: OrderedDict[str, Message] = OrderedDict()
        self._waiting: dict[str, asyncio.Future[Message | None]] = {}
        self._reads: list[str] = []
        self._reads_sent: dict[str, list[str]] = {}  # ref -> ids the mailbox has not confirmed
        self._read_refs = itertools.count(1)
        self._cursor: int | None = None
        self._flush_at: asyncio.TimerHandle | None = None
        self._pending_subs: list[int] = []
        self._asked: frozenset[str] = frozenset()  # the types this connection has asked for
        self._greeted = False  # this connection's `hello` arrived

    @property
    def position(self) -> int | None:
        """The seq up to which everything for this agent was received (None before the first)."""
        return self._pos

    # -- what the bus asks ----------------------------------------------------------------

    def set_types(self, types: Iterable[str]) -> None:
        """Receive broadcasts of these types (``*``: all) from now on."""
        self._types = frozenset(types)
        ws = self._ws
        if ws is not None and self._greeted:
            self._ask(ws)
        # else: the next connection's URL, or this one's `hello`, asks for them

    def _ask(self, ws: ClientConnection) -> None:
        """Tell the mailbox the current types, if it has not been told them."""
        if self._types == self._asked:
            return
        self._asked = self._types
        since = self._pos if self._pos is not None else self._from
        self._pending_subs.append(since)
        self.send_soon(ws, _wire.sub_frame(self._types, since))

    async def publish(self, message: Message) -> Message | None:
        """Send ``message``; the stored message (with seq), or None while disconnected.

        A message not answered stays in the outbox and goes again on
        reconnect, so it is published once however the connection fares.
        """
        self._outbox[message.id] = message
        ws = self._ws
        if ws is None:
            return None
        future: asyncio.Future[Message | None] = asyncio.get_running_loop().create_future()
        self._waiting[message.id] = future
        try:
            await self.send(ws, _wire.pub_frame(message.id, message))
            async with asyncio.timeout(self._ack_timeout):
                return await future
        except TimeoutError:
            logger.warning("mailbox did not answer publish %s in time; it stays queued", message.id)
            return None
        finally:
            self._waiting.pop(message.id, None)

    @property
    def queued(self) -> int:
        """Publishes not yet answered by the mailbox."""
        return len(self._outbox)

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
        self._flush_at = asyncio.get_running_loop().call_later(delay, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_at = None
        ws = self._ws
        if ws is not None:
            self.spawn(self._flush_small(ws))

    async def _flush_small(self, ws: ClientConnection) -> None:
        reads, self._reads = self._reads, []
        cursor, self._cursor = self._cursor, None
        try:
            if reads:
                ref = f"read-{next(self._read_refs)}"
                self._reads_sent[ref] = reads  # until the mailbox confirms (else sent again)
                await ws.send(_wire.read_frame(ref, reads))
            if cursor is not None:
                await ws.send(_wire.cursor_frame(cursor))
        except ConnectionClosed:
            if cursor is not None:
                self._cursor = max(cursor, self._cursor or 0)

    # -- the link's hooks -----------------------------------------------------------------

    def connect_url(self) -> str:
        """Fresh (the mailbox picks the start) before the first seq; else resume after it."""
        self._asked = self._types
        self._greeted = False
        types = sorted(self._types)
        query: dict[str, str | int] = {"types": ",".join(types)} if types else {}
        if self._pos is None:
            return self.url(**query)
        since = min([self._pos, *self._pending_subs])
        query["since"] = since
        if self._from > since:
            query["from"] = self._from
        return self.url(**query)

    async def on_open(self, ws: ClientConnection) -> None:
        """Send again what the mailbox has not answered, in order; then reads and cursor."""
        self._pending_subs.clear()
        for message in list(self._outbox.values()):
            await self.send(ws, _wire.pub_frame(message.id, message))
        await self._flush_small(ws)

    def on_frame(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        """The stream's frames: messages, replay pages, ``ready``, publish answers."""
        op = frame.get("op")
        if op == "msg":
            self._received(Message.model_validate(frame["m"]))
        elif op == "ok" and str(frame.get("ref")) in self._reads_sent:
            del self._reads_sent[str(frame["ref"])]
        elif op == "ok":
            self._answered(str(frame["ref"]), Message.model_validate(frame["m"]))
        elif op == "error":
            self._refused(frame)
        elif op == "hello":
            self._from = int(frame["from"])
            self._greeted = True
            self._ask(ws)  # types changed while this connection was being made
        elif op == "more":
            self.send_soon(ws, _wire.more_frame())
        elif op == "ready":
            self._pos = max(self._pos or 0, int(frame["seq"]))
            self.establish()
        elif op == "subok":
            since = int(frame["from"])
            if since in self._pending_subs:
                self._pending_subs.remove(since)

    def on_lost(self) -> None:
        """Publishes waiting for an answer return (they stay queued); unconfirmed reads wait too."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        unconfirmed = [i for ids in self._reads_sent.values() for i in ids]
        self._reads_sent.clear()
        self._reads = unconfirmed + self._reads
        for future in self._waiting.values():
            if not future.done():
                future.set_result(None)

    async def before_close(self, ws: ClientConnection) -> None:
        """The last reads and cursor."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        await self._flush_small(ws)

    # -- frames ---------------------------------------------------------------------------

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
        error = frame_error(frame)
        if isinstance(ref, str):
            self._outbox.pop(ref, None)
            future = self._waiting.get(ref)
            if future is not None and not future.done():
                future.set_exception(error)
                return
        logger.error("%r: %s", self, error)
