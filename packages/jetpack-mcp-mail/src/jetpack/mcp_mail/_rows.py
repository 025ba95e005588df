"""Rows ↔ models: messages, leases and presence (times as epoch ms, JSON as text)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jetpack.shared import AgentPresence, AgentStatus, Lease, Message, from_ms

__all__ = ["dumps", "message_params", "row_to_lease", "row_to_message", "row_to_presence"]


def dumps(value: Any) -> str:
    """Compact JSON, as stored."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def message_params(message: Message, timestamp_ms: int) -> tuple[Any, ...]:
    """Parameters of :data:`~jetpack.mcp_mail._sql.INSERT_MESSAGE`."""
    return (
        message.id,
        message.type.value,
        message.from_agent,
        message.to_agent,
        dumps(message.payload),
        timestamp_ms,
        message.correlation_id,
        int(message.ack_required),
    )


def row_to_message(row: Sequence[Any]) -> Message:
    """A row of :data:`~jetpack.mcp_mail._sql.MESSAGE_COLUMNS` as a Message."""
    seq, id_, type_, from_agent, to_agent, payload, ts, correlation_id, ack_required = row
    return Message.model_validate(
        {
            "seq": seq,
            "id": id_,
            "type": type_,
            "from_agent": from_agent,
            "to_agent": to_agent,
            "payload": json.loads(payload),
            "timestamp": from_ms(ts),
            "correlation_id": correlation_id,
            "ack_required": bool(ack_required),
        }
    )


def row_to_lease(row: Sequence[Any]) -> Lease:
    """A row of :data:`~jetpack.mcp_mail._sql.LEASE_COLUMNS` as a Lease."""
    path, agent_id, exclusive, acquired_at, expires_at, token = row
    return Lease(
        path=path,
        agent_id=agent_id,
        exclusive=bool(exclusive),
        acquired_at=from_ms(acquired_at),
        expires_at=from_ms(expires_at),
        fencing_token=token,
    )


def row_to_presence(row: Sequence[Any], now_ms: int, window_ms: int) -> AgentPresence:
    """A ``presence`` row; silent longer than ``window_ms`` (or reporting offline) → offline."""
    agent_id, status, last_seen, info = row
    reported = AgentStatus(status)
    online = now_ms - last_seen <= window_ms and reported is not AgentStatus.OFFLINE
    return AgentPresence(
        agent_id=agent_id,
        status=reported if online else AgentStatus.OFFLINE,
        last_seen=from_ms(last_seen),
        online=online,
        info=json.loads(info),
    )
