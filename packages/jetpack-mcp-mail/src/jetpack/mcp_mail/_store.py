"""MCPMailAdapter: the local MailBus, one SQLite file shared by every process of a project."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from jetpack.mcp_mail import _sql as sql
from jetpack.mcp_mail._checks import (
    check_agent_id,
    check_info,
    check_limit,
    check_message_id,
    subscription_key,
)
from jetpack.mcp_mail._db import Database
from jetpack.mcp_mail._leases import LeaseOps
from jetpack.mcp_mail._options import Options
from jetpack.mcp_mail._wake import Notifier, WakeListener
from jetpack.shared import (
    AgentPresence,
    AgentStatus,
    AsyncStoreMixin,
    Message,
    MessageHandler,
    MessageType,
    from_ms,
    to_ms,
    utcnow,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.delivery import DeadLetter, Dispatcher
from jetpack.shared.errors import UnavailableError, ValidationError
from jetpack.shared.rules import compose_message

__all__ = ["DB_FILENAME", "MCPMailAdapter"]

logger = logging.getLogger("jetpack.mcp_mail")

DB_FILENAME = "mail.db"
"""The store's file name inside ``mail_dir``."""


class MCPMailAdapter(LeaseOps, AsyncStoreMixin):
    """The local mail bus and file leases of one agent, safe across processes.

    ``mail_dir`` holds ``mail.db`` (SQLite, WAL) and ``mail.db.lock``. Options
    (all keyword-only, milliseconds unless named otherwise): ``presence_window_ms``
    (90 s), ``retention_ms`` (7 days), ``poll_interval_ms`` (500; the fallback when a
    wake-up datagram is lost), ``handler_attempts`` (4), ``handler_retry_base_ms``
    (250), ``cleanup_interval_ms`` (60 s), ``cleanup_batch`` (1,000 rows),
    ``busy_timeout_ms`` (10 s), ``batch_size`` (256 messages per read).
    """

    def __init__(
        self, agent_id: str, mail_dir: str | os.PathLike[str] = ".mail", **options: Any
    ) -> None:
        self._agent_id = check_agent_id(agent_id)
        if not isinstance(mail_dir, str | os.PathLike) or not os.fspath(mail_dir):
            raise ValidationError("mail_dir", "must be a non-empty path")
        self._mail_dir = Path(mail_dir)
        self._options = Options.parse(options)
        self._db = Database(
            self._mail_dir / DB_FILENAME, busy_timeout_ms=self._options.busy_timeout_ms
        )
        self._dispatcher = Dispatcher(
            attempts=self._options.handler_attempts,
            retry_base_ms=self._options.handler_retry_base_ms,
            dead_letter=self._record_dead_letter,
        )
        self._notifier: Notifier | None = None
        self._listener: WakeListener | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pos = 0
        self._saved_pos = 0
        self._open = False
        self._granted: dict[str, int] = {}  # path -> fencing token granted through this bus

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str, **options: Any) -> Self:
        """Build an unopened bus on the project's ``[local] mail_dir``."""
        return cls(agent_id, config.path(config.local.mail_dir), **options)

    def __repr__(self) -> str:
        return f"MCPMailAdapter(agent_id={self._agent_id!r}, mail_dir={str(self._mail_dir)!r})"

    @property
    def agent_id(self) -> str:
        """The agent this bus speaks for."""
        return self._agent_id

    @property
    def mail_dir(self) -> Path:
        """The folder holding the store."""
        return self._mail_dir

    @property
    def db_path(self) -> Path:
        """The SQLite file (open it with ``sqlite3`` to inspect the store)."""
        return self._db.path

    @property
    def wake_address(self) -> str | None:
        """The wake-up socket of this bus (``@name`` = Linux abstract namespace), or None."""
        return self._listener.address if self._listener else None

    # -- lifecycle ------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the store, register for wake-ups and start delivering (idempotent).

        Subscribe before opening, or right after it without awaiting in between, to
        receive the backlog: unacknowledged direct messages and, for an agent that ran
        before, the broadcasts it missed since its cursor.
        """
        if self._open:
            return
        await self._db.open()
        try:
            self._notifier = Notifier()
            self._listener = WakeListener()
            address = self._listener.start()
            self._pos = await self._db.call(self._start_sync, address)
        except BaseException:
            await self._teardown()
            raise
        self._saved_pos = self._pos
        self._open = True
        self._runner = asyncio.create_task(self._run(), name=f"jetpack-mail:{self._agent_id}")
        logger.debug("mail bus %s open on %s (cursor %d)", self._agent_id, self.db_path, self._pos)

    def _start_sync(self, conn: sqlite3.Connection, address: str | None) -> int:
        with self._db.transaction(conn):
            if address is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO listeners (address, agent_id, pid, started_at)"
                    " VALUES (?, ?, ?, ?)",
                    (address, self._agent_id, os.getpid(), to_ms(utcnow())),
                )
            cursor = sql.get_cursor(conn, self._agent_id)
            return sql.max_seq(conn) if cursor is None else cursor

    async def shutdown(self) -> None:
        """Stop delivery, save the cursor, release this bus's leases, close (idempotent).

        Only the leases granted through this bus (and not re-granted since
        through another bus of the same agent) are released: the agent's leases
        held through other buses (its orchestrator loop, another MCP server)
        stay until released or expired.
        """
        if not self._open:
            return
        self._open = False
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await self._dispatcher.close()
        try:
            await self._db.call(self._stop_sync)
        except Exception:
            logger.exception("mail bus %s: could not save its state on shutdown", self._agent_id)
        self._granted.clear()
        await self._teardown()

    # ``async with bus`` (AsyncStoreMixin) opens and closes through these.
    open = initialize
    aclose = shutdown

    def _stop_sync(self, conn: sqlite3.Connection) -> None:
        with self._db.transaction(conn):
            sql.save_progress(conn, self._agent_id, self._pos, [], to_ms(utcnow()))
            sql.release_granted_leases(conn, self._agent_id, self._granted)
            if self.wake_address is not None:
                sql.remove_listeners(conn, [self.wake_address])

    async def _teardown(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        await self._db.close()

    def _require_open(self) -> None:
        if not self._open:
            raise UnavailableError(f"mail bus {self._agent_id!r} is not open; use 'async with'")

    # -- delivery loop ----------------------------------------------------------------

    async def _run(self) -> None:
        await asyncio.sleep(0)  # let the opener subscribe before the backlog goes out
        assert self._listener is not None
        wake = self._listener.event
        poll = self._options.poll_interval_ms / 1000
        next_cleanup = 0.0
        backlog_done = False
        while self._open:
            try:
                if not backlog_done:
                    await self._deliver(
                        await self._db.call(sql.fetch_backlog, self._agent_id, self._pos)
                    )
                    backlog_done = True
                wake.clear()
                batch = await self._db.call(
                    sql.fetch_stream, self._agent_id, self._pos, self._options.batch_size
                )
                if batch:
                    await self._deliver(batch)
                    continue
                if time.monotonic() >= next_cleanup:
                    next_cleanup = time.monotonic() + self._options.cleanup_interval_ms / 1000
                    await self.cleanup()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("mail bus %s: delivery loop error; retrying", self._agent_id)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
            # that races with the wake-up, and shutdown would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await wake.wait()

    async def _deliver(self, batch: list[Message]) -> None:
        read: list[str] = []
        for message in batch:
            handled, ok = await self._dispatcher.dispatch(message)
            if message.to_agent is not None and not message.ack_required and handled and ok:
                read.append(message.id)
            if message.seq is not None and message.seq > self._pos:
                self._pos = message.seq
        if read or self._pos != self._saved_pos:
            pos = self._pos
            await self._db.call(self._progress_sync, pos, read)
            self._saved_pos = pos

    def _progress_sync(self, conn: sqlite3.Connection, pos: int, read: list[str]) -> None:
        with self._db.transaction(conn):
            sql.save_progress(conn, self._agent_id, pos, read, to_ms(utcnow()))

    async def cleanup(self) -> int:
        """Delete one bounded batch of messages and dead letters older than the retention."""
        self._require_open()
        cutoff = to_ms(utcnow()) - self._options.retention_ms
        batch = self._options.cleanup_batch

        def work(conn: sqlite3.Connection) -> int:
            with self._db.transaction(conn):
                return sql.cleanup(conn, cutoff, batch)

        removed = await self._db.call(work)
        if removed:
            logger.info("mail bus %s: removed %d expired messages", self._agent_id, removed)
        return removed

    async def _record_dead_letter(
        self, message: Message, handler: str, error: str, attempts: int
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with self._db.transaction(conn):
                sql.record_dead_letter(
                    conn, self._agent_id, message, handler, error, attempts, to_ms(utcnow())
                )

        await self._db.call(work)

    async def list_dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Messages whose handler on this agent failed every attempt, oldest first."""
        self._require_open()
        limit = check_limit(limit)
        rows = await self._db.call(sql.list_dead_letters, self._agent_id, limit)
        return [
            DeadLetter(
                id=row_id,
                message=Message.model_validate_json(message),
                handler=handler,
                error=error,
                attempts=attempts,
                failed_at=from_ms(failed_at),
            )
            for row_id, message, handler, error, attempts, failed_at in rows
        ]

    # -- messages -------------------------------------------------------------------

    async def _send(
        self,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None,
        to_agent: str | None,
        correlation_id: str | None,
        ack_required: bool | None,
    ) -> Message:
        """Send to ``to_agent`` (None: broadcast) the parts given, or a whole Message."""
        message = compose_message(
            self._agent_id, type, payload, to_agent, correlation_id, ack_required
        )
        self._require_open()
        seq = await self._db.call(self._insert_sync, message, to_ms(message.timestamp))
        return message.model_copy(update={"seq": seq})

    def _insert_sync(self, conn: sqlite3.Connection, message: Message, ts: int) -> int:
        with self._db.transaction(conn):
            seq = sql.insert_message(conn, message, ts)
            addresses = sql.listener_addresses(conn)
        self._wake(conn, addresses)
        return seq

    def _wake(self, conn: sqlite3.Connection, addresses: list[str]) -> None:
        if self._notifier is None:  # pragma: no cover - closed under us
            return
        dead = self._notifier.poke(addresses)
        if dead:
            logger.debug("forgetting %d dead wake-up listeners", len(dead))
            with self._db.transaction(conn):
                sql.remove_listeners(conn, dead)

    async def publish(
        self,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Broadcast to every live subscriber of ``type`` (and ``"*"``), in every process.

        ``type`` may be a whole Message from this agent (the seed's
        ``publish(message)``); the bus assigns its id, timestamp and seq.
        """
        return await self._send(type, payload, None, correlation_id, ack_required)

    def subscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Call ``handler`` for each message of ``type`` (``"*"``: all) from now on."""
        if not callable(handler):
            raise ValidationError("handler", "must be callable")
        self._dispatcher.add(subscription_key(type), handler)

    def unsubscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Stop calling ``handler`` for ``type``."""
        self._dispatcher.remove(subscription_key(type), handler)

    async def send_to(
        self,
        agent_id: str,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Send a direct message, kept until ``agent_id`` acknowledges it (even if offline).

        ``type`` may be a whole Message from this agent (its ``to_agent`` None or
        ``agent_id``); ``ack_required`` defaults to True.
        """
        check_agent_id(agent_id)
        return await self._send(type, payload, agent_id, correlation_id, ack_required)

    async def acknowledge(self, message_id: str) -> bool:
        """Mark a direct message to this agent as handled. False if unknown or not ours."""
        check_message_id(message_id)
        self._require_open()

        def work(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                return sql.acknowledge(conn, self._agent_id, message_id, to_ms(utcnow()))

        return await self._db.call(work)

    async def fetch_inbox(self, *, limit: int = 100, include_acked: bool = False) -> list[Message]:
        """Direct messages to this agent, oldest first (unacknowledged only by default)."""
        limit = check_limit(limit)
        self._require_open()
        return await self._db.call(sql.inbox, self._agent_id, limit, bool(include_acked))

    # -- presence -------------------------------------------------------------------

    async def send_heartbeat(
        self, status: AgentStatus = AgentStatus.IDLE, info: Mapping[str, Any] | None = None
    ) -> None:
        """Record that this agent is alive and broadcast a ``heartbeat`` message."""
        try:
            reported = AgentStatus(status)
        except ValueError:
            raise ValidationError("status", f"unknown agent status {status!r}") from None
        extra = check_info(info)
        self._require_open()

        def work(conn: sqlite3.Connection) -> None:
            with self._db.transaction(conn):
                sql.upsert_presence(conn, self._agent_id, reported, extra, to_ms(utcnow()))

        await self._db.call(work)
        await self.publish(MessageType.HEARTBEAT, {**extra, "status": reported.value})

    async def list_agents(self, *, include_offline: bool = False) -> list[AgentPresence]:
        """Agents seen recently; silent longer than the presence window → offline."""
        self._require_open()
        return await self._db.call(
            sql.list_presence,
            to_ms(utcnow()),
            self._options.presence_window_ms,
            bool(include_offline),
        )
