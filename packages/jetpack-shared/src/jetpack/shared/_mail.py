"""Mail models: messages, leases and agent presence."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from jetpack.shared._base import Identifier, JetpackModel, PayloadObject, UtcDatetime

__all__ = [
    "AgentPresence",
    "AgentStatus",
    "Lease",
    "LeaseStatus",
    "Message",
    "MessageType",
]


class MessageType(StrEnum):
    """The 19 message types agents exchange."""

    TASK_CREATED = "task.created"
    TASK_CLAIMED = "task.claimed"
    TASK_ASSIGNED = "task.assigned"
    TASK_UPDATED = "task.updated"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_RETRY_SCHEDULED = "task.retry_scheduled"
    TASK_PROGRESS = "task.progress"
    TASK_AVAILABLE = "task.available"
    TASK_INTERRUPTED = "task.interrupted"
    AGENT_STARTED = "agent.started"
    AGENT_STOPPED = "agent.stopped"
    AGENT_ERROR = "agent.error"
    AGENT_STATUS = "agent.status"
    FILE_LOCK = "file.lock"
    FILE_UNLOCK = "file.unlock"
    COORDINATION_REQUEST = "coordination.request"
    COORDINATION_RESPONSE = "coordination.response"
    HEARTBEAT = "heartbeat"


class Message(JetpackModel):
    """A message on the bus. The bus sets ``id``, ``from_agent``, ``timestamp`` and ``seq``."""

    id: Identifier = Field(description="Message id.")
    type: MessageType = Field(description="What the message is about.")
    from_agent: Identifier = Field(description="Sender agent id.")
    to_agent: Identifier | None = Field(default=None, description="Recipient; None = broadcast.")
    payload: PayloadObject = Field(default_factory=dict, description="JSON body.")
    timestamp: UtcDatetime = Field(description="When it was sent (UTC).")
    correlation_id: str | None = Field(default=None, max_length=200, description="Thread id.")
    ack_required: bool = Field(default=False, description="Sender asks for an acknowledgement.")
    seq: int | None = Field(
        default=None, ge=0, description="Bus sequence number: increases per stream; for replay."
    )


class Lease(JetpackModel):
    """A granted file lease (a path or a glob such as ``src/auth/**``)."""

    path: str = Field(description="Normalised project-relative path or glob pattern.")
    agent_id: Identifier = Field(description="Holder.")
    exclusive: bool = Field(default=True, description="Exclusive (writer) or shared (reader).")
    acquired_at: UtcDatetime = Field(description="When granted or last re-granted.")
    expires_at: UtcDatetime = Field(description="When it lapses unless renewed.")
    fencing_token: int = Field(ge=1, description="Increases with every grant, store-wide.")


class LeaseStatus(JetpackModel):
    """Whether a path is covered by a live lease, and by whom."""

    path: str = Field(description="The path asked about, normalised.")
    is_leased: bool = Field(description="True when any live lease overlaps the path.")
    agent_id: str | None = Field(default=None, description="Holder of the overlapping lease.")
    expires_at: UtcDatetime | None = Field(default=None, description="When that lease lapses.")
    exclusive: bool | None = Field(default=None, description="Whether that lease is exclusive.")
    fencing_token: int | None = Field(default=None, description="That grant's fencing token.")
    pattern: str | None = Field(default=None, description="The leased path or glob that matched.")


class AgentStatus(StrEnum):
    """What an agent reports in its heartbeat."""

    IDLE = "idle"
    BUSY = "busy"
    ERROR = "error"
    OFFLINE = "offline"


class AgentPresence(JetpackModel):
    """The last heartbeat of an agent, as ``list_agents`` reports it."""

    agent_id: Identifier = Field(description="Agent id.")
    status: AgentStatus = Field(description="Reported status; offline when silent too long.")
    last_seen: UtcDatetime = Field(description="Time of the last heartbeat.")
    online: bool = Field(description="Heard from within the presence window.")
    info: dict[str, Any] = Field(default_factory=dict, description="Extra heartbeat fields.")
