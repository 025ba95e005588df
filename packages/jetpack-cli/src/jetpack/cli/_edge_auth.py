"""Asking the Worker who a token is: ``jetpack edge login`` and ``jetpack doctor`` use it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from jetpack.shared.edge.client import EdgeClient
from jetpack.shared.errors import NotFoundError, ValidationError

__all__ = ["Identity", "check_token_text", "whoami"]


@dataclass(frozen=True, slots=True)
class Identity:
    """What the Worker says about a token (never the token itself)."""

    project: str
    token_id: str | None
    agent_id: str | None
    """Set for an agent-bound token (it acts only as that agent)."""
    health_ms: float
    """Round trip of the unauthenticated health check (API version, modules)."""
    auth_ms: float
    """Round trip of the authenticated call."""


def check_token_text(token: str) -> str:
    """The token without surrounding blanks; ValidationError when it cannot be a token."""
    token = token.strip()
    if not token:
        raise ValidationError("token", "is empty")
    if any(c.isspace() or not c.isprintable() for c in token) or len(token) > 512:
        raise ValidationError("token", "is not a token (spaces, control characters or too long)")
    return token


async def whoami(url: str, token: str) -> Identity:
    """Health check, then ``GET /api/whoami`` with ``token``; typed errors on refusal.

    A Worker built before ``/api/whoami`` existed answers 404: the project is then
    read from its token listing (the token id stays unknown).
    """
    client = EdgeClient(url, token, retries=1, timeout=15.0)
    started = time.perf_counter()
    await client.open()  # GET /api/health: reachable, same API version
    health_ms = (time.perf_counter() - started) * 1000
    async with client:
        started = time.perf_counter()
        try:
            me = await client.json("GET", "/api/whoami")
        except NotFoundError:
            listing = await client.json("GET", "/api/tokens")
            tokens = listing.get("tokens") or [{}]
            me = {"project": tokens[0].get("project", "?"), "token_id": None, "agent_id": None}
        auth_ms = (time.perf_counter() - started) * 1000
    return Identity(
        project=str(me["project"]),
        token_id=me.get("token_id"),
        agent_id=me.get("agent_id"),
        health_ms=health_ms,
        auth_ms=auth_ms,
    )
