"""Mail and lease tools: ``mail`` (send, inbox, ack) and ``lease`` (reserve paths or globs).

A refused reservation is a tool error naming the holder and the expiry
(``lease on 'src/a.py' held by agent-2 until 12:03:04``). A multi-path
reservation is all-or-nothing: the paths granted by this call are given back
when a later one is refused (leases the agent held before the call are kept).
"""

from __future__ import annotations

from typing import Any

from jetpack.cli.mcp._context import ToolContext, clock, slim
from jetpack.cli.mcp._schema import ToolSpec, obj
from jetpack.shared import Lease, Message, MessageType
from jetpack.shared.errors import ConflictError, LeaseHeldError, ValidationError
from jetpack.shared.rules import normalize_lease_path

__all__ = ["DEFAULT_LEASE_TTL_S", "MAIL_TOOLS"]

DEFAULT_LEASE_TTL_S = 1800
"""Lease TTL when the agent gives none (renew it with ``lease renew``)."""

_ID = {"type": "string", "minLength": 1, "maxLength": 200}


def _message(message: Message) -> dict[str, Any]:
    payload = dict(message.payload)
    text = payload.pop("text", None)
    return slim(
        {
            "id": message.id,
            "from": message.from_agent,
            "to": message.to_agent or "*",
            "type": message.type.value,
            "text": text,
            "data": payload,
            "re": message.correlation_id,
            "at": clock(message.timestamp),
        }
    )


def _message_type(value: str) -> MessageType:
    try:
        return MessageType(value)
    except ValueError as exc:
        raise ValidationError("type", f"unknown message type {value!r}") from exc


async def _mail(ctx: ToolContext, args: dict[str, Any]) -> Any:
    action = args["action"]
    bus = ctx.adapters.mail
    if action == "send":
        if not args.get("text"):
            raise ValidationError("text", "is required for send")
        kind = _message_type(args.get("type", MessageType.COORDINATION_REQUEST.value))
        payload = {"text": args["text"]}
        to = args.get("to")
        if to and to != "*":
            sent = await bus.send_to(
                to, kind, payload, correlation_id=args.get("re"), ack_required=True
            )
        else:
            sent = await bus.publish(kind, payload, correlation_id=args.get("re"))
        return {"id": sent.id, "to": sent.to_agent or "*"}
    if action == "inbox":
        limit = int(args.get("limit", 20))
        direct = await bus.fetch_inbox(limit=limit, include_acked=bool(args.get("all")))
        broadcasts = list(ctx.broadcasts)[-limit:]
        ctx.broadcasts.clear()
        return {
            "direct": [_message(m) for m in direct],
            "broadcast": [_message(m) for m in broadcasts],
        }
    ids = args.get("ids") or []
    if not ids:
        raise ValidationError("ids", "is required for ack")
    done = [i for i in ids if await bus.acknowledge(i)]
    return slim({"acked": done, "unknown": [i for i in ids if i not in done]})


MAIL = ToolSpec(
    name="mail",
    description="Messages: send (to an agent id, or omit `to` to broadcast), inbox (direct "
    "messages not yet acked + recent broadcasts), ack (ids).",
    schema=obj(
        ["action"],
        action={"type": "string", "enum": ["send", "inbox", "ack"]},
        to=_ID,
        text={"type": "string", "maxLength": 50_000},
        type={"type": "string", "maxLength": 40},
        re=_ID,
        ids={"type": "array", "items": _ID, "maxItems": 200},
        all={"type": "boolean"},
        limit={"type": "integer", "minimum": 1, "maximum": 200},
    ),
    handler=_mail,
)


# -- lease ------------------------------------------------------------------------------------


def _lease(lease: Lease) -> dict[str, Any]:
    return {
        "path": lease.path,
        "holder": lease.agent_id,
        "exclusive": lease.exclusive,
        "until": clock(lease.expires_at),
        "fence": lease.fencing_token,
    }


async def _mine(ctx: ToolContext) -> dict[str, Lease]:
    return {
        lease.path: lease
        for lease in await ctx.adapters.mail.list_leases()
        if lease.agent_id == ctx.agent_id
    }


async def _reserve(ctx: ToolContext, paths: list[str], args: dict[str, Any]) -> Any:
    bus = ctx.adapters.mail
    ttl_ms = int(args.get("ttl_s", DEFAULT_LEASE_TTL_S)) * 1000
    exclusive = bool(args.get("exclusive", True))
    held_before = set(await _mine(ctx))
    granted: list[str] = []
    for path in paths:
        if await bus.acquire_lease(path, ttl_ms, exclusive):
            granted.append(path)
            continue
        for done in granted:
            if normalize_lease_path(done) not in held_before:
                await bus.release_lease(done)
        status = await bus.is_leased(path)
        raise LeaseHeldError(path, status.agent_id, status.expires_at, pattern=status.pattern)
    mine = await _mine(ctx)
    return [_lease(mine[p]) for p in map(normalize_lease_path, paths) if p in mine]


async def _lease_tool(ctx: ToolContext, args: dict[str, Any]) -> Any:
    action = args["action"]
    bus = ctx.adapters.mail
    paths: list[str] = args.get("paths") or []
    if action == "who":
        if not paths:
            return [_lease(lease) for lease in await bus.list_leases()]
        out = []
        for path in paths:
            status = await bus.is_leased(path)
            out.append(
                slim(
                    {
                        "path": status.path,
                        "holder": status.agent_id,
                        "exclusive": status.exclusive,
                        "until": clock(status.expires_at),
                        "via": status.pattern if status.pattern != status.path else None,
                    }
                )
            )
        return out
    if not paths:
        raise ValidationError("paths", f"is required for {action}")
    if action == "reserve":
        return await _reserve(ctx, paths, args)
    if action == "renew":
        ttl_ms = int(args.get("ttl_s", DEFAULT_LEASE_TTL_S)) * 1000
        missing = [p for p in paths if not await bus.renew_lease(p, ttl_ms)]
        if missing:
            raise ConflictError(f"you hold no live lease on {', '.join(missing)}")
        mine = await _mine(ctx)
        return [_lease(mine[p]) for p in map(normalize_lease_path, paths) if p in mine]
    released = [p for p in paths if await bus.release_lease(p)]
    return slim({"released": released, "not_held": [p for p in paths if p not in released]})


LEASE = ToolSpec(
    name="lease",
    description="File reservations: reserve paths/globs before editing (all or none; exclusive "
    "by default), renew, release, who (holders; all leases if no paths).",
    schema=obj(
        ["action"],
        action={"type": "string", "enum": ["reserve", "renew", "release", "who"]},
        paths={"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 100},
        exclusive={"type": "boolean"},
        ttl_s={"type": "integer", "minimum": 10, "maximum": 86_400},
    ),
    handler=_lease_tool,
)

MAIL_TOOLS = [MAIL, LEASE]
"""The mail and lease tools, in listing order."""
