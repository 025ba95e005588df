"""MCPMailAdapter: the local MailBus, one SQLite file shared by every process of a project.

Each public method checks its plain arguments (:mod:`~jetpack.mcp_mail._checks`)
on the event loop, then runs one job: a read (:mod:`~jetpack.mcp_mail._reads`)
in one snapshot on a reader thread, or a write (:mod:`~jetpack.mcp_mail._writes`)
as one ``BEGIN IMMEDIATE`` transaction on the writer thread
(:class:`jetpack.shared.sqlite.Database`). The delivery loop lives in
:mod:`~jetpack.mcp_mail._delivery`, the wake-up datagrams in :mod:`~jetpack.mcp_mail._wake`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from jetpack.mcp_mail import _reads, _writes
from jetpack.mcp_mail._checks import (
    check_agent_id,
    check_info,
    check_limit,
    check_message_id,
    check_ttl,
    subscription_key,
)
from jetpack.mcp_mail._delivery import Delivery
from jetpack.mcp_mail._options import Options
from jetpack.mcp_mail._schema import ensure_schema
from jetpack.mcp_mail._wake import Notifier, WakeListener
from jetpack.shared import (
    AgentPresence,
    AgentStatus,
    AsyncStoreMixin,
    Lease,
    LeaseStatus,
    Message,
    MessageHandler,
    MessageType,
    from_ms,
    to_ms,
    utcnow,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.delivery import DeadLetter, Dispatcher
from jetpack.shared.errors import LeaseHeldError, UnavailableError, ValidationError
from jetpack.shared.rules import compose_message, normalize_lease_path, paths_overlap
from jetpack.shared.sqlite import Database

__all__ = ["DB_FILENAME", "MCPMailAdapter"]

logger = logging.getLogger("jetpack.mcp_mail")

DB_FILENAME = "mail.db"
"""The store's file name inside ``mail_dir``."""


def _now() -> int:
    return to_ms(utcnow())


class MCPMailAdapter(AsyncStoreMixin):
    """The local mail bus and file leases of one agent, safe across processes.

    ``mail_dir`` holds ``mail.db`` (SQLite, WAL) and ``mail.db.lock``. Options
    (all keyword-only, milliseconds unless named otherwise): ``presence_window_ms``
    (90 s), ``retention_ms`` (7 days), ``poll_interval_ms`` (500; the fallback when a
    wake-up datagram is lost), ``handler_attempts`` (4), ``handler_retry_base_ms``
    (250), ``cleanup_interval_ms`` (60 s), ``cleanup_batch`` (1,000 rows),
    ``busy_timeout_ms`` (10 s), ``batch_size`` (256 messages per read). Any other
    keyword is a ValidationError naming it.
    """

    def __init__(
        self, agent_id: str, mail_dir: str | os.PathLike[str] = ".mail", **options: Any
    ) -> None:
        self._agent_id = check_agent_id(agent_id)
        if not isinstance(mail_dir, str | os.PathLike) or not os.fspath(mail_dir):
            raise ValidationError("mail_dir", "must be a non-empty path")
        self._mail_dir = Path(mail_dir)
        self._options = Options.parse(options)
        self._db: Database[None] = Database(
            self._mail_dir / DB_FILENAME,
            store="mail store",
            setup=ensure_schema,
            busy_timeout_ms=self._options.busy_timeout_ms,
        )
        self._dispatcher = Dispatcher(
            attempts=self._options.handler_attempts,
            retry_base_ms=self._options.handler_retry_base_ms,
            dead_letter=self._record_dead_letter,
        )
        self._notifier: Notifier | None = None
        self._listener: WakeListener | None = None
        self._delivery: Delivery | None = None
        self._granted: dict[str, int] = {}  # path -> fencing token granted through this bus

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str, **options: Any) -> Self:
        """Build an unopened bus on the project's ``[local] mail_dir`` (``options`` as above)."""
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
        if self._delivery is not None:
            return
        await self._db.open()
        try:
            self._notifier = Notifier()
            self._listener = WakeListener()
            address = self._listener.start()
            pos = await self._db.write(
                _writes.open_bus, self._agent_id, address, os.getpid(), _now()
            )
        except BaseException:
            await self._teardown()
            raise
        self._delivery = Delivery(
            self._db,
            self._agent_id,
            self._dispatcher,
            pos=pos,
            poll_interval_ms=self._options.poll_interval_ms,
            batch_size=self._options.batch_size,
            cleanup_interval_ms=self._options.cleanup_interval_ms,
            cleanup=self.cleanup,
        )
        self._delivery.start(self._listener.event)
        logger.debug("mail bus %s open on %s (cursor %d)", self._agent_id, self.db_path, pos)

    async def shutdown(self) -> None:
        """Stop delivery, save the cursor, release this bus's leases, close (idempotent).

        Only the leases granted through this bus (and not re-granted since
        through another bus of the same agent) are released: the agent's leases
        held through other buses (its orchestrator loop, another MCP server)
        stay until released or expired.
        """
        delivery, self._delivery = self._delivery, None
        if delivery is None:
            return
        pos = await delivery.stop()
        await self._dispatcher.close()
        try:
            granted = dict(self._granted)
            await self._db.write(
                _writes.close_bus, self._agent_id, pos, granted, self.wake_address, _now()
            )
        except Exception:
            logger.exception("mail bus %s: could not save its state on shutdown", self._agent_id)
        self._granted.clear()
        await self._teardown()

    # ``async with bus`` (AsyncStoreMixin) opens and closes through these.
    open = initialize
    aclose = shutdown

    async def _teardown(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        await self._db.close()

    def _require_open(self) -> None:
        if self._delivery is None:
            raise UnavailableError(f"mail bus {self._agent_id!r} is not open; use 'async with'")

    # -- retention and dead letters -------------------------------------------------------

    async def cleanup(self) -> int:
        """Delete one bounded batch of messages and dead letters older than the retention."""
        self._require_open()
        cutoff = _now() - self._options.retention_ms
        removed = await self._db.write(_writes.cleanup, cutoff, self._options.cleanup_batch)
        if removed:
            logger.info("mail bus %s: removed %d expired messages", self._agent_id, removed)
        return removed

    async def _record_dead_letter(
        self, message: Message, handler: str, error: str, attempts: int
    ) -> None:
        await self._db.write(
            _writes.record_dead_letter, self._agent_id, message, handler, error, attempts, _now()
        )

    async def list_dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Messages whose handler on this agent failed every attempt, oldest first."""
        self._require_open()
        limit = check_limit(limit)
        rows = await self._db.read(_reads.dead_letters, self._agent_id, limit)
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
        seq, addresses = await self._db.write(
            _writes.insert_message, message, to_ms(message.timestamp)
        )
        await self._wake(addresses)
        return message.model_copy(update={"seq": seq})

    async def _wake(self, addresses: list[str]) -> None:
        """Poke every open bus (committed first, so they find the message); forget dead ones."""
        if self._notifier is None:  # pragma: no cover - closed under us
            return
        dead = self._notifier.poke(addresses)
        if dead:
            logger.debug("forgetting %d dead wake-up listeners", len(dead))
            await self._db.write(_writes.remove_listeners, dead)

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
        return await self._db.write(_writes.acknowledge, self._agent_id, message_id, _now())

    async def fetch_inbox(self, *, limit: int = 100, include_acked: bool = False) -> list[Message]:
        """Direct messages to this agent, oldest first (unacknowledged only by default)."""
        limit = check_limit(limit)
        self._require_open()
        return await self._db.read(_reads.inbox, self._agent_id, limit, bool(include_acked))

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
        await self._db.write(_writes.upsert_presence, self._agent_id, reported, extra, _now())
        await self.publish(MessageType.HEARTBEAT, {**extra, "status": reported.value})

    async def list_agents(self, *, include_offline: bool = False) -> list[AgentPresence]:
        """Agents seen recently; silent longer than the presence window → offline."""
        self._require_open()
        window = self._options.presence_window_ms
        return await self._db.read(_reads.presence, _now(), window, bool(include_offline))

    # -- leases ---------------------------------------------------------------------

    async def grant_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> Lease:
        """Like :meth:`acquire_lease`, but return the grant (with its fencing token).

        Raises LeaseHeldError naming the holder when an overlapping lease conflicts.
        """
        norm = normalize_lease_path(path)
        ttl = check_ttl(ttl_ms)
        if not isinstance(exclusive, bool):
            raise ValidationError("exclusive", "must be a boolean")
        self._require_open()
        lease, conflict = await self._db.write(
            _writes.acquire_lease, self._agent_id, norm, exclusive, _now(), ttl
        )
        if lease is None:
            assert conflict is not None
            raise LeaseHeldError(
                norm, conflict.agent_id, conflict.expires_at, pattern=conflict.path
            )
        self._granted[lease.path] = lease.fencing_token
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
        ttl = check_ttl(ttl_ms)
        self._require_open()
        return await self._db.write(_writes.renew_lease, self._agent_id, norm, _now(), ttl)

    async def release_lease(self, path: str) -> bool:
        """Release this agent's lease on exactly ``path``; False if it holds none."""
        norm = normalize_lease_path(path)
        self._require_open()
        self._granted.pop(norm, None)
        return await self._db.write(_writes.release_lease, self._agent_id, norm, _now())

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
        return await self._db.read(_reads.live_leases, _now())
