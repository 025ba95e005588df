"""What a bus sends and the checks of its arguments, the same on every mail backend.

``publish``/``send_to`` take a type and payload, or a whole Message
(:func:`outgoing`); the other checks raise ValidationError naming the argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jetpack.shared._base import MAX_METADATA_BYTES, parse
from jetpack.shared._mail import Message, MessageType
from jetpack.shared._time import utcnow
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules._checks import check_json_object, check_text
from jetpack.shared.rules._ids import new_message_id

__all__ = [
    "Outgoing",
    "check_info",
    "check_message_id",
    "compose_message",
    "message_type",
    "outgoing",
    "subscription_key",
]


def message_type(value: MessageType | str, field: str = "type") -> MessageType:
    """One of the 19 message types, or ValidationError."""
    try:
        return MessageType(value)
    except ValueError:
        raise ValidationError(field, f"unknown message type {value!r}") from None


def subscription_key(value: MessageType | str) -> str:
    """A message type value, or ``"*"``."""
    return "*" if value == "*" else message_type(value).value


def check_info(info: Mapping[str, Any] | None) -> dict[str, Any]:
    """Heartbeat extras: a JSON object of at most MAX_METADATA_BYTES."""
    if info is None:
        return {}
    return check_json_object(info, "info", MAX_METADATA_BYTES)


def check_message_id(message_id: object) -> str:
    """A non-empty string that can be stored (no lone surrogates)."""
    if not isinstance(message_id, str) or not message_id.strip():
        raise ValidationError("message_id", "must be a non-empty string")
    return check_text(message_id, "message_id")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The parts of a message the caller chooses; the bus adds id, sender, time and seq."""

    type: MessageType | str
    payload: Mapping[str, Any] | None
    correlation_id: str | None
    ack_required: bool


def outgoing(
    bus_agent: str,
    type: MessageType | str | Message,
    payload: Mapping[str, Any] | None,
    correlation_id: str | None,
    ack_required: bool | None,
    to_agent: str | None,
) -> Outgoing:
    """Unpack the arguments of ``publish`` (``to_agent`` None) or ``send_to``.

    ``ack_required`` None means the method's default: False for a broadcast,
    True for a direct message.
    A :class:`Message` (the seed's ``publish(message)`` / ``sendTo(id, message)``)
    gives its type, payload, correlation_id and ack_required; its ``from_agent``
    must be ``bus_agent`` and its ``to_agent`` None or the recipient, and the
    other arguments stay unset. Each violation is a ValidationError naming it.
    """
    if not isinstance(type, Message):
        ack = (to_agent is not None) if ack_required is None else ack_required
        return Outgoing(type, payload, correlation_id, ack)
    message = type
    for name, value in (
        ("payload", payload),
        ("correlation_id", correlation_id),
        ("ack_required", ack_required),
    ):
        if value is not None:
            raise ValidationError(name, "give a Message or its parts, not both")
    if message.from_agent != bus_agent:
        raise ValidationError(
            "from_agent", f"is {message.from_agent!r}; this bus speaks for {bus_agent!r}"
        )
    if message.to_agent is not None and message.to_agent != to_agent:
        where = "publish broadcasts (use send_to)" if to_agent is None else f"sent to {to_agent!r}"
        raise ValidationError("to_agent", f"is {message.to_agent!r} but the message is {where}")
    return Outgoing(message.type, message.payload, message.correlation_id, message.ack_required)


def compose_message(
    bus_agent: str,
    type: MessageType | str | Message,
    payload: Mapping[str, Any] | None,
    to_agent: str | None,
    correlation_id: str | None,
    ack_required: bool | None,
) -> Message:
    """The message a bus sends for ``publish``/``send_to``: checked, with a new id and the time.

    The arguments are those of :func:`outgoing`; the seq is the bus's to assign.
    Every problem is a ValidationError naming the field, before anything is sent.
    """
    out = outgoing(bus_agent, type, payload, correlation_id, ack_required, to_agent)
    kind = message_type(out.type)
    if out.payload is not None and not isinstance(out.payload, Mapping):
        raise ValidationError("payload", "must be a JSON object")
    if not isinstance(out.ack_required, bool):
        raise ValidationError("ack_required", "must be a boolean")
    return parse(
        Message,
        {
            "id": new_message_id(),
            "type": kind,
            "from_agent": bus_agent,
            "to_agent": to_agent,
            "payload": dict(out.payload or {}),
            "timestamp": utcnow(),
            "correlation_id": out.correlation_id,
            "ack_required": out.ack_required,
        },
    )
