"""In-memory reference MailBus: the kit's proof that its rules can be met.

Buses of one :class:`InMemoryMailHub` share messages, leases and presence, as
agents in one process would. A test aid, never registered as a backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jetpack.shared._base import MAX_METADATA_BYTES, parse
from jetpack.shared._lifecycle import AsyncStoreMixin
from jetpack.shared._mail import (
    AgentPresence,
    AgentStatus,
    Lease,
    LeaseStatus,
    Message,
    MessageType,
)
from jetpack.shared._protocols import MessageHandler
from jetpack.shared._time import utcnow
from jetpack.shared.errors import LeaseHeldError, ValidationError
from jetpack.shared.rules import (
    check_agent_id,
    check_json_object,
    check_options,
    check_ttl,
    new_message_id,
    normalize_lease_path,
    outgoing,
    paths_overlap,
)

__all__ = ["InMemoryMailBus", "InMemoryMailHub"]

logger = logging.getLogger(__name__)


@dataclass
class InMemoryMailHub:
    """State shared by the buses of one test."""

    messages: list[Message] = field(default_factory=list)
    acked: set[tuple[str, str]] = field(default_factory=set)
    leases: dict[tuple[str, str], Lease] = field(default_factory=dict)
    presence: dict[str, AgentPresence] = field(default_factory=dict)
    buses: list[InMemoryMailBus] = field(default_factory=list)
    fencing: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def live_leases(self, now: datetime) -> list[Lease]:
        for key, lease in list(self.leases.items()):
            if lease.expires_at <= now:
                del self.leases[key]
        return list(self.leases.values())


def _message_type(value: MessageType | str) -> MessageType:
    try:
        return MessageType(value)
    except ValueError:
        raise ValidationError("type", f"unknown message type {value!r}") from None


class InMemoryMailBus(AsyncStoreMixin):
    """A MailBus for one agent over a shared hub. Option: ``presence_window_ms``."""

    def __init__(
        self,
        agent_id: str,
        *,
        hub: InMemoryMailHub,
        presence_window_ms: int = 90_000,
        **unknown: object,
    ) -> None:
        check_options(unknown, ("hub", "presence_window_ms"))
        self._agent_id = check_agent_id(agent_id)
        self._hub = hub
        self._window = timedelta(milliseconds=check_ttl(presence_window_ms, "presence_window_ms"))
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._granted: dict[str, int] = {}  # path -> fencing token granted through this bus

    @property
    def agent_id(self) -> str:
        """The agent this bus speaks for."""
        return self._agent_id

    async def initialize(self) -> None:
        """Join the hub and start delivering."""
        if self._worker is None:
            self._hub.buses.append(self)
            self._worker = asyncio.create_task(self._deliver())

    async def shutdown(self) -> None:
        """Leave the hub, release the leases granted through this bus, stop delivering."""
        if self._worker is None:
            return
        self._hub.buses.remove(self)
        async with self._hub.lock:
            for path, token in self._granted.items():
                lease = self._hub.leases.get((path, self._agent_id))
                if lease is not None and lease.fencing_token == token:
                    del self._hub.leases[(path, self._agent_id)]
            self._granted.clear()
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    # ``async with bus`` (AsyncStoreMixin) opens and closes through these.
    open = initialize
    aclose = shutdown

    async def _deliver(self) -> None:
        while True:
            message = await self._queue.get()
            handlers = [*self._handlers.get(message.type.value, ()), *self._handlers.get("*", ())]
            for handler in handlers:
                try:
                    result = handler(message)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("handler %r failed on %s", handler, message.id)

    async def _send(
        self,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None,
        to_agent: str | None,
        correlation_id: str | None,
        ack_required: bool | None,
    ) -> Message:
        out = outgoing(self._agent_id, type, payload, correlation_id, ack_required, to_agent)
        kind = _message_type(out.type)
        payload, correlation_id, ack_required = out.payload, out.correlation_id, out.ack_required
        async with self._hub.lock:
            message = parse(
                Message,
                {
                    "id": new_message_id(),
                    "type": kind,
                    "from_agent": self._agent_id,
                    "to_agent": to_agent,
                    "payload": dict(payload or {}),
                    "timestamp": utcnow(),
                    "correlation_id": correlation_id,
                    "ack_required": ack_required,
                    "seq": len(self._hub.messages) + 1,
                },
            )
            self._hub.messages.append(message)
        for bus in self._hub.buses:
            if to_agent is None or bus.agent_id == to_agent:
                bus._queue.put_nowait(message)
        return message

    async def publish(
        self,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Broadcast (a type and payload, or a whole Message from this agent)."""
        return await self._send(type, payload, None, correlation_id, ack_required)

    def subscribe(self, type: MessageType | str, handler: MessageHandler) -> None:
        """Add a handler."""
        key = "*" if type == "*" else _message_type(type).value
        self._handlers.setdefault(key, []).append(handler)

    def unsubscribe(self, type: MessageType | str, handler: MessageHandler) -> None:
        """Remove a handler."""
        key = "*" if type == "*" else _message_type(type).value
        handlers = self._handlers.get(key, [])
        if handler in handlers:
            handlers.remove(handler)

    async def send_to(
        self,
        agent_id: str,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Direct message, kept until acked."""
        check_agent_id(agent_id)
        return await self._send(type, payload, agent_id, correlation_id, ack_required)

    async def acknowledge(self, message_id: str) -> bool:
        """Ack a direct message to this agent."""
        async with self._hub.lock:
            for m in self._hub.messages:
                if m.id == message_id and m.to_agent == self._agent_id:
                    self._hub.acked.add((message_id, self._agent_id))
                    return True
            return False

    async def fetch_inbox(self, *, limit: int = 100, include_acked: bool = False) -> list[Message]:
        """Direct messages to this agent, oldest first."""
        if limit < 1:
            raise ValidationError("limit", "must be >= 1")
        mine = [
            m
            for m in self._hub.messages
            if m.to_agent == self._agent_id
            and (include_acked or (m.id, self._agent_id) not in self._hub.acked)
        ]
        return mine[:limit]

    async def acquire_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> bool:
        """Grant unless an overlapping lease of another agent conflicts."""
        try:
            await self.grant_lease(path, ttl_ms, exclusive)
        except LeaseHeldError:
            return False
        return True

    async def grant_lease(self, path: str, ttl_ms: int, exclusive: bool = True) -> Lease:
        """Grant and return the lease, or raise LeaseHeldError naming the holder."""
        norm = normalize_lease_path(path)
        check_ttl(ttl_ms)
        async with self._hub.lock:
            now = utcnow()
            for lease in self._hub.live_leases(now):
                if lease.agent_id == self._agent_id or not paths_overlap(lease.path, norm):
                    continue
                if exclusive or lease.exclusive:
                    raise LeaseHeldError(norm, lease.agent_id, lease.expires_at, pattern=lease.path)
            self._hub.fencing += 1
            granted = self._hub.leases[(norm, self._agent_id)] = Lease(
                path=norm,
                agent_id=self._agent_id,
                exclusive=exclusive,
                acquired_at=now,
                expires_at=now + timedelta(milliseconds=ttl_ms),
                fencing_token=self._hub.fencing,
            )
            self._granted[norm] = granted.fencing_token
            return granted

    async def renew_lease(self, path: str, ttl_ms: int) -> bool:
        """Extend own live lease."""
        norm = normalize_lease_path(path)
        check_ttl(ttl_ms)
        async with self._hub.lock:
            now = utcnow()
            self._hub.live_leases(now)
            lease = self._hub.leases.get((norm, self._agent_id))
            if lease is None:
                return False
            self._hub.leases[(norm, self._agent_id)] = lease.model_copy(
                update={"expires_at": now + timedelta(milliseconds=ttl_ms)}
            )
            return True

    async def release_lease(self, path: str) -> bool:
        """Release own lease."""
        norm = normalize_lease_path(path)
        async with self._hub.lock:
            self._hub.live_leases(utcnow())
            self._granted.pop(norm, None)
            return self._hub.leases.pop((norm, self._agent_id), None) is not None

    async def is_leased(self, path: str) -> LeaseStatus:
        """Any live overlapping lease."""
        norm = normalize_lease_path(path)
        for lease in self._hub.live_leases(utcnow()):
            if paths_overlap(lease.path, norm):
                return LeaseStatus(
                    path=norm,
                    is_leased=True,
                    agent_id=lease.agent_id,
                    expires_at=lease.expires_at,
                    exclusive=lease.exclusive,
                    fencing_token=lease.fencing_token,
                    pattern=lease.path,
                )
        return LeaseStatus(path=norm, is_leased=False)

    async def list_leases(self) -> list[Lease]:
        """All live leases."""
        return sorted(self._hub.live_leases(utcnow()), key=lambda lease: lease.fencing_token)

    async def send_heartbeat(
        self, status: AgentStatus = AgentStatus.IDLE, info: Mapping[str, Any] | None = None
    ) -> None:
        """Record presence and broadcast a heartbeat."""
        status = AgentStatus(status)
        extra = {} if info is None else check_json_object(info, "info", MAX_METADATA_BYTES)
        self._hub.presence[self._agent_id] = AgentPresence(
            agent_id=self._agent_id,
            status=status,
            last_seen=utcnow(),
            online=True,
            info=extra,
        )
        await self.publish(MessageType.HEARTBEAT, {"status": status.value})

    async def list_agents(self, *, include_offline: bool = False) -> list[AgentPresence]:
        """Presence, offline after the window."""
        now = utcnow()
        out = []
        for p in sorted(self._hub.presence.values(), key=lambda p: p.agent_id):
            online = now - p.last_seen <= self._window and p.status is not AgentStatus.OFFLINE
            if online or include_offline:
                status = p.status if online else AgentStatus.OFFLINE
                out.append(p.model_copy(update={"online": online, "status": status}))
        return out
