"""What a bus sends: ``publish``/``send_to`` take a type and payload, or a whole Message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jetpack.shared._mail import Message, MessageType
from jetpack.shared.errors import ValidationError

__all__ = ["Outgoing", "outgoing"]


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
