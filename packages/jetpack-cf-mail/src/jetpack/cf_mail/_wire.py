"""The mail and lease routes of the Worker as seen from Python: paths, bodies and frames.

Bodies are the JSON of the ``jetpack.shared`` models (``Message``, ``Lease``,
``LeaseStatus``, ``AgentPresence``); their field names and limits are those of
the zod schemas in ``worker/schemas.ts`` (a test compares the two through the
Worker's OpenAPI document). The WebSocket frames are JSON objects with an
``op``: the server sends ``msg``, ``more``, ``ready``, ``ok``, ``error`` and
``subok``; the client sends ``pub``, ``sub``, ``read``, ``cursor`` and ``more``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jetpack.shared import AgentPresence, Lease, LeaseStatus, Message
from jetpack.shared.delivery import DeadLetter

__all__ = [
    "ACK",
    "AGENTS",
    "DEAD_LETTERS",
    "HEARTBEAT",
    "INBOX",
    "LEASE",
    "LEASES",
    "LEASE_SOCKET",
    "PUBLISH",
    "RENEW",
    "SUBSCRIBE",
    "agents_of",
    "cursor_frame",
    "dead_letters_of",
    "dumps",
    "lease_of",
    "leases_of",
    "message_of",
    "messages_of",
    "more_frame",
    "outgoing_body",
    "pub_frame",
    "read_frame",
    "status_of",
    "sub_frame",
]

PUBLISH = "/api/mail/publish"
SUBSCRIBE = "/api/mail/subscribe"
INBOX = "/api/mail/inbox"
ACK = "/api/mail/ack"
HEARTBEAT = "/api/mail/heartbeat"
AGENTS = "/api/mail/agents"
DEAD_LETTERS = "/api/mail/dead-letters"
LEASE = "/api/mail/lease"
LEASE_SOCKET = "/api/mail/lease/socket"
RENEW = "/api/mail/lease/renew"
LEASES = "/api/mail/leases"


def dumps(value: Any) -> str:
    """Compact JSON, ASCII only (lone surrogates were refused before)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def message_of(data: Any) -> Message:
    """A Message from its JSON."""
    return Message.model_validate(data)


def messages_of(data: Any) -> list[Message]:
    """``{"messages": [...]}``."""
    return [message_of(item) for item in data["messages"]]


def lease_of(data: Any) -> Lease:
    """A Lease from its JSON."""
    return Lease.model_validate(data)


def leases_of(data: Any) -> list[Lease]:
    """``{"leases": [...]}``."""
    return [lease_of(item) for item in data["leases"]]


def status_of(data: Any) -> LeaseStatus:
    """A LeaseStatus from its JSON."""
    return LeaseStatus.model_validate(data)


def agents_of(data: Any) -> list[AgentPresence]:
    """``{"agents": [...]}``."""
    return [AgentPresence.model_validate(item) for item in data["agents"]]


def dead_letters_of(data: Any) -> list[DeadLetter]:
    """``{"dead_letters": [...]}``."""
    return [DeadLetter.model_validate(item) for item in data["dead_letters"]]


def outgoing_body(message: Message) -> dict[str, Any]:
    """What the sender chooses of a message (the mailbox adds sender, time and seq)."""
    return {
        "id": message.id,
        "type": message.type.value,
        "to_agent": message.to_agent,
        "payload": message.payload,
        "correlation_id": message.correlation_id,
        "ack_required": message.ack_required,
    }


def pub_frame(ref: str, message: Message) -> str:
    """Publish ``message`` over the socket; answered by ``ok`` (or ``error``) with ``ref``."""
    return dumps({"op": "pub", "ref": ref, "m": outgoing_body(message)})


def sub_frame(types: Iterable[str], since: int) -> str:
    """Replace the socket's subscriptions; broadcasts of added types after ``since`` come too."""
    return dumps({"op": "sub", "types": sorted(set(types)), "from": since})


def read_frame(ref: str, ids: list[str]) -> str:
    """Direct messages handled that need no acknowledgement; answered ``ok`` with ``ref``."""
    return dumps({"op": "read", "ref": ref, "ids": ids})


def cursor_frame(seq: int) -> str:
    """The agent's handlers are done up to ``seq``."""
    return dumps({"op": "cursor", "seq": seq})


def more_frame() -> str:
    """Ask for the next page of a replay."""
    return dumps({"op": "more"})
