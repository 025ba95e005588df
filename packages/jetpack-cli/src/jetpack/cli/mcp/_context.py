"""What every tool handler gets: the stores, the agent id, and small shared helpers."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from jetpack.shared import AgentStatus, Message, MessageType
from jetpack.shared.registry import Adapters

__all__ = ["BROADCAST_BUFFER", "HEARTBEAT_EVERY_S", "ToolContext", "clock", "slim"]

logger = logging.getLogger(__name__)

BROADCAST_BUFFER = 100
"""Broadcasts kept for the next inbox fetch (oldest dropped first)."""

HEARTBEAT_EVERY_S = 30.0
"""A tool call sends a presence heartbeat at most this often."""

_T = TypeVar("_T")

_QUIET_TYPES = frozenset({MessageType.HEARTBEAT})


class ToolContext:
    """The stores of one agent's MCP session.

    It subscribes to every broadcast on the bus and keeps the last
    :data:`BROADCAST_BUFFER` of them (other agents' only, heartbeats left out),
    so that ``mail inbox`` shows broadcasts as well as direct messages.
    """

    def __init__(self, adapters: Adapters, agent_id: str) -> None:
        self.adapters = adapters
        self.agent_id = agent_id
        self.broadcasts: deque[Message] = deque(maxlen=BROADCAST_BUFFER)
        self._last_heartbeat = 0.0
        self._subscribed = False

    def subscribe(self) -> None:
        """Start buffering broadcasts (idempotent)."""
        if not self._subscribed:
            self.adapters.mail.subscribe("*", self._on_message)
            self._subscribed = True

    def unsubscribe(self) -> None:
        """Stop buffering broadcasts."""
        if self._subscribed:
            self.adapters.mail.unsubscribe("*", self._on_message)
            self._subscribed = False

    def _on_message(self, message: Message) -> None:
        if message.to_agent is not None or message.from_agent == self.agent_id:
            return
        if message.type in _QUIET_TYPES:
            return
        self.broadcasts.append(message)

    async def heartbeat(self) -> None:
        """Tell the bus this agent is alive, at most every :data:`HEARTBEAT_EVERY_S`."""
        now = time.monotonic()
        if now - self._last_heartbeat < HEARTBEAT_EVERY_S:
            return
        self._last_heartbeat = now
        try:
            await self.adapters.mail.send_heartbeat(AgentStatus.BUSY, {"via": "mcp"})
        except Exception:
            logger.warning("heartbeat of %s failed", self.agent_id, exc_info=True)

    async def announce(self, type: MessageType, payload: Mapping[str, Any]) -> None:
        """Broadcast an informational event; a failure is logged, never raised."""
        try:
            await self.adapters.mail.publish(type, dict(payload))
        except Exception:
            logger.warning("publishing %s failed", type, exc_info=True)


def clock(value: datetime | None) -> str | None:
    """A UTC time as ``HH:MM:SS`` (what an agent needs to judge an expiry)."""
    return None if value is None else f"{value:%H:%M:%S}"


def slim(data: _T) -> _T:
    """Drop None, empty lists and empty dicts, recursively (fewer tokens per result)."""
    return cast(_T, _slim(data))


def _slim(data: Any) -> Any:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            value = _slim(value)
            if value is None or value == [] or value == {}:
                continue
            out[key] = value
        return out
    if isinstance(data, list):
        return [_slim(v) for v in data]
    return data
