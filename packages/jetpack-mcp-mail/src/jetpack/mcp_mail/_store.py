"""MCPMailAdapter: the local MailBus, one SQLite file shared by every process of a project."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from jetpack.mcp_mail import _sql as sql
from jetpack.mcp_mail._db import Database
from jetpack.mcp_mail._delivery import DeadLetter, Dispatcher
from jetpack.mcp_mail._options import Options
from jetpack.mcp_mail._wake import Notifier, WakeListener
from jetpack.shared import (
    MAX_METADATA_BYTES,
    AgentPresence,
    AgentStatus,
    Lease,
    LeaseStatus,
    Message,
    MessageHandler,
    MessageType,
    from_ms,
    parse,
    to_ms,
    utcnow,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import LeaseHeldError, UnavailableError, ValidationError
from jetpack.shared.rules import new_message_id, normalize_lease_path, paths_overlap

__all__ = ["DB_FILENAME", "MAX_LEASE_TTL_MS", "MCPMailAdapter"]

logger = logging.getLogger("jetpack.mcp_mail")

DB_FILENAME = "mail.db"
"""The store's file name inside ``mail_dir``."""
MAX_LEASE_TTL_MS = 365 * 24 * 60 * 60 * 1000
"""Longest lease TTL accepted (a year); renew instead of asking for more."""


def _message_type(value: MessageType | str, field: str = "type") -> MessageType:
    try:
        return MessageType(value)
    except ValueError:
        raise ValidationError(field, f"unknown message type {value!r}") from None


def _subscription_key(value: MessageType | str) -> str:
    return "*" if value == "*" else _message_type(value).value


class MCPMailAdapter:
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
        if not isinstance(agent_id, str) or not agent_id.strip():
            raise ValidationError("agent_id", "must be a non-empty string")
        self._agent_id = parse(AgentPresence, _presence_probe(agent_id)).agent_id
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

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

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
        """Stop delivery, save the cursor, release this agent's leases, close (idempotent)."""
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
        await self._teardown()

    def _stop_sync(self, conn: sqlite3.Connection) -> None:
        with self._db.transaction(conn):
            sql.save_progress(conn, self._agent_id, self._pos, [], to_ms(utcnow()))
            sql.release_agent_leases(conn, self._agent_id)
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
        limit = _check_limit(limit)
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
        type: MessageType | str,
        payload: Mapping[str, Any] | None,
        to_agent: str | None,
        correlation_id: str | None,
        ack_required: bool,
    ) -> Message:
        kind = _message_type(type)
        if payload is not None and not isinstance(payload, Mapping):
            raise ValidationError("payload", "must be a JSON object")
        if not isinstance(ack_required, bool):
            raise ValidationError("ack_required", "must be a boolean")
        now = utcnow()
        message = parse(
            Message,
            {
                "id": new_message_id(),
                "type": kind,
                "from_agent": self._agent_id,
                "to_agent": to_agent,
                "payload": dict(payload or {}),
                "timestamp": now,
                "correlation_id": correlation_id,
                "ack_required": ack_required,
            },
        )
        self._require_open()
        seq = await self._db.call(self._insert_sync, message, to_ms(now))
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
        type: MessageType | str,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool = False,
    ) -> Message:
        """Broadcast to every live subscriber of ``type`` (and ``"*"``), in every process."""
        return await self._send(type, payload, None, correlation_id, ack_required)

    def subscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Call ``handler`` for each message of ``type`` (``"*"``: all) from now on."""
        if not callable(handler):
            raise ValidationError("handler", "must be callable")
        self._dispatcher.add(_subscription_key(type), handler)

    def unsubscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Stop calling ``handler`` for ``type``."""
        self._dispatcher.remove(_subscription_key(type), handler)

    async def send_to(
        self,
        agent_id: str,
        type: MessageType | str,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool = True,
    ) -> Message:
        """Send a direct message, kept until ``agent_id`` acknowledges it (even if offline)."""
        if not isinstance(agent_id, str) or not agent_id.strip():
            raise ValidationError("agent_id", "must be a non-empty string")
        parse(AgentPresence, _presence_probe(agent_id))
        return await self._send(type, payload, agent_id, correlation_id, ack_required)

    async def acknowledge(self, message_id: str) -> bool:
        """Mark a direct message to this agent as handled. False if unknown or not ours."""
        if not isinstance(message_id, str) or not message_id.strip():
            raise ValidationError("message_id", "must be a non-empty string")
        self._require_open()

        def work(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                return sql.acknowledge(conn, self._agent_id, message_id, to_ms(utcnow()))

        return await self._db.call(work)

    async def fetch_inbox(self, *, limit: int = 100, include_acked: bool = False) -> list[Message]:
        """Direct messages to this agent, oldest first (unacknowledged only by default)."""
        limit = _check_limit(limit)
        self._require_open()
        return await self._db.call(sql.inbox, self._agent_id, limit, bool(include_acked))

    # -- leases ---------------------------------------------------------------------

    async def grant_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> Lease:
        """Like :meth:`acquire_lease`, but return the grant (with its fencing token).

        Raises LeaseHeldError naming the holder when an overlapping lease conflicts.
        """
        norm = normalize_lease_path(path)
        ttl = _check_ttl(ttl_ms)
        if not isinstance(exclusive, bool):
            raise ValidationError("exclusive", "must be a boolean")
        self._require_open()

        def work(conn: sqlite3.Connection) -> tuple[Lease | None, Lease | None]:
            with self._db.transaction(conn):
                return sql.acquire_lease(
                    conn, self._agent_id, norm, exclusive, to_ms(utcnow()), ttl
                )

        lease, conflict = await self._db.call(work)
        if lease is None:
            assert conflict is not None
            raise LeaseHeldError(
                norm, conflict.agent_id, conflict.expires_at, pattern=conflict.path
            )
        return lease

    async def acquire_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> bool:
        """Lease a path or glob; False if an overlapping lease of another agent conflicts.

        Exclusive conflicts with anything; shared only with exclusive. Re-acquiring
        one's own lease renews it with a new fencing token.
        """
        try:
            await self.grant_lease(path, ttl_ms, exclusive)
        except LeaseHeldError as exc:
            logger.debug("mail bus %s: %s", self._agent_id, exc)
            return False
        return True

    async def renew_lease(self, path: str, ttl_ms: int) -> bool:
        """Extend this agent's live lease on exactly ``path``; False if it holds none."""
        norm = normalize_lease_path(path)
        ttl = _check_ttl(ttl_ms)
        self._require_open()

        def work(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                return sql.renew_lease(conn, self._agent_id, norm, to_ms(utcnow()), ttl)

        return await self._db.call(work)

    async def release_lease(self, path: str) -> bool:
        """Release this agent's lease on exactly ``path``; False if it holds none."""
        norm = normalize_lease_path(path)
        self._require_open()

        def work(conn: sqlite3.Connection) -> bool:
            with self._db.transaction(conn):
                return sql.release_lease(conn, self._agent_id, norm, to_ms(utcnow()))

        return await self._db.call(work)

    async def is_leased(self, path: str) -> LeaseStatus:
        """Whether any live lease (of anyone) overlaps ``path``: exclusive ones first."""
        norm = normalize_lease_path(path)
        leases = await self.list_leases()
        matches = [lease for lease in leases if paths_overlap(lease.path, norm)]
        if not matches:
            return LeaseStatus(path=norm, is_leased=False)
        best = min(matches, key=lambda lease: (not lease.exclusive, lease.fencing_token))
        return LeaseStatus(
            path=norm,
            is_leased=True,
            agent_id=best.agent_id,
            expires_at=best.expires_at,
            exclusive=best.exclusive,
            fencing_token=best.fencing_token,
            pattern=best.path,
        )

    async def list_leases(self) -> list[Lease]:
        """All live leases, of every agent, in grant order."""
        self._require_open()
        return await self._db.call(sql.live_leases, to_ms(utcnow()))

    # -- presence -------------------------------------------------------------------

    async def send_heartbeat(
        self, status: AgentStatus = AgentStatus.IDLE, info: Mapping[str, Any] | None = None
    ) -> None:
        """Record that this agent is alive and broadcast a ``heartbeat`` message."""
        try:
            reported = AgentStatus(status)
        except ValueError:
            raise ValidationError("status", f"unknown agent status {status!r}") from None
        extra = _check_info(info)
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


def _presence_probe(agent_id: str) -> dict[str, Any]:
    """A minimal AgentPresence, validated only to check ``agent_id`` against the id rule."""
    return {"agent_id": agent_id, "status": "idle", "last_seen": utcnow(), "online": True}


def _check_ttl(ttl_ms: int, field: str = "ttl_ms") -> int:
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms <= 0:
        raise ValidationError(field, "must be a positive integer of milliseconds")
    if ttl_ms > MAX_LEASE_TTL_MS:
        raise ValidationError(field, f"must be at most {MAX_LEASE_TTL_MS} (one year)")
    return ttl_ms


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ValidationError("limit", "must be an integer from 1 to 10000")
    return limit


def _check_info(info: Mapping[str, Any] | None) -> dict[str, Any]:
    if info is None:
        return {}
    if not isinstance(info, Mapping):
        raise ValidationError("info", "must be a JSON object")
    data = dict(info)
    try:
        size = len(json.dumps(data, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise ValidationError("info", f"must be JSON-serialisable ({exc})") from exc
    if size > MAX_METADATA_BYTES:
        raise ValidationError("info", f"is larger than {MAX_METADATA_BYTES} bytes as JSON")
    return data
