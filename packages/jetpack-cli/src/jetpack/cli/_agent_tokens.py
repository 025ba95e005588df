"""Agent-bound tokens: each agent's children reach the edge as that agent only.

When a store of a run is on the edge, :func:`agent_tokens` wraps the run's
executor: before an agent's attempt, the CLI mints (from its project token,
``POST /api/tokens``) an expiring token bound to that agent and hands it to
the attempt's children as ``JETPACK_API_TOKEN`` (``claude`` passes it on to its
``jetpack mcp`` server). A token bound to an agent acts only as that agent:
claiming, completing, leasing or mailing as another is refused (403). One
token serves an agent's attempts until it nears its expiry; every token is
revoked (``DELETE /api/tokens/{id}``) when the run ends, on errors and
Ctrl-C too; a killed CLI leaves them to expire.

Executors that run in the CLI's own process (demo, instant) start no child:
they get no token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jetpack.cli._common import STORES
from jetpack.cli._executors import (
    DemoExecutor,
    ExecutionRequest,
    ExecutionResult,
    Executor,
    InstantExecutor,
    ProgressHandler,
)
from jetpack.shared import FailureType
from jetpack.shared.config import Backend, JetpackConfig
from jetpack.shared.edge.client import EdgeClient
from jetpack.shared.errors import AuthError, JetpackError, NotFoundError

__all__ = ["TOKEN_ENV", "AgentTokens", "TokenedExecutor", "agent_tokens", "token_ttl_s"]

logger = logging.getLogger(__name__)

TOKEN_ENV = "JETPACK_API_TOKEN"
"""The variable an agent's children read their token from."""
MIN_TTL_S = 3600.0
"""Shortest lifetime of an agent token."""
MAX_TTL_S = 30 * 86_400.0
"""Longest lifetime the Worker grants an agent token."""
MARGIN_S = 300.0
"""A token is replaced when it would expire within an attempt's timeout plus this."""
REVOKE_TIMEOUT_S = 15.0
"""How long the end of a run waits for the revocations."""


def token_ttl_s(attempt_timeout_s: float) -> float:
    """Lifetime of a new token: two attempt timeouts and ten minutes, within [1 h, 30 days]."""
    return min(MAX_TTL_S, max(MIN_TTL_S, 2 * attempt_timeout_s + 600.0))


@dataclass(slots=True)
class _Minted:
    id: str
    token: str = dataclasses.field(repr=False)
    expires: float
    """``time.monotonic()`` at which the Worker stops taking it."""


class AgentTokens:
    """Mints, reuses and revokes one agent-bound token per agent, over the project token."""

    def __init__(self, client: EdgeClient) -> None:
        self._client = client
        self._live: dict[str, _Minted] = {}
        self._spent: list[str] = []
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"AgentTokens({self._client.url!r}, {len(self._live)} live)"

    @property
    def live_ids(self) -> list[str]:
        """Ids of the tokens not revoked yet (never the tokens)."""
        return [m.id for m in self._live.values()]

    async def token_for(self, agent_id: str, attempt_timeout_s: float) -> str:
        """A token acting only as ``agent_id``, valid for the whole attempt."""
        lock = self._locks.setdefault(agent_id, asyncio.Lock())
        async with lock:
            current = self._live.get(agent_id)
            if current is not None and current.expires - time.monotonic() > (
                attempt_timeout_s + MARGIN_S
            ):
                return current.token
            ttl = token_ttl_s(attempt_timeout_s)
            answer = await self._client.json(
                "POST", "/api/tokens", json={"agent_id": agent_id, "ttl_ms": int(ttl * 1000)}
            )
            minted = _Minted(str(answer["id"]), str(answer["token"]), time.monotonic() + ttl)
            self._live[agent_id] = minted
            if current is not None:
                self._spent.append(current.id)
            logger.info("agent token %s minted for %s (%.0f s)", minted.id, agent_id, ttl)
        if self._spent:
            await self._revoke(self._spent.pop())
        return minted.token

    async def _revoke(self, token_id: str) -> None:
        try:
            await self._client.request("DELETE", f"/api/tokens/{quote(token_id, safe='')}")
        except NotFoundError:
            pass  # already expired or revoked
        except JetpackError as exc:
            logger.warning("could not revoke agent token %s (it will expire): %s", token_id, exc)

    async def revoke_all(self) -> None:
        """Revoke every token minted (a failure is logged: the token still expires)."""
        ids = [*self.live_ids, *self._spent]
        self._live.clear()
        self._spent.clear()
        if not ids:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._revoke(i) for i in ids)), REVOKE_TIMEOUT_S
            )
        except TimeoutError:
            logger.warning("revoking %d agent tokens timed out; they will expire", len(ids))


class TokenedExecutor:
    """An executor whose attempts get their agent's token in ``JETPACK_API_TOKEN``.

    Everything else (``name``, ``preflight``, ``mcp_tools``…) is the wrapped executor's.
    """

    name: str

    def __init__(self, inner: Executor, tokens: AgentTokens) -> None:
        self.inner = inner
        self.tokens = tokens
        self.name = inner.name

    def __repr__(self) -> str:
        return f"TokenedExecutor({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def execute(
        self, request: ExecutionRequest, on_progress: ProgressHandler | None = None
    ) -> ExecutionResult:
        """Run the attempt with the agent's token; a refused project token stops the run."""
        try:
            token = await self.tokens.token_for(request.agent_id, request.timeout_s)
        except AuthError as exc:
            text = (
                f"the Worker refused to mint an agent token ({exc.message}): the CLI needs a "
                "project token (not an agent-bound one); see `jetpack doctor`"
            )
            return ExecutionResult(
                ok=False, summary=text, error=text, failure_type=FailureType.ERROR, fatal=text
            )
        env = {**request.env, TOKEN_ENV: token}
        return await self.inner.execute(dataclasses.replace(request, env=env), on_progress)


_IN_PROCESS = (DemoExecutor, InstantExecutor)
"""Executors that start no child process: nothing to hand a token to."""


@contextlib.asynccontextmanager
async def agent_tokens(config: JetpackConfig, executor: Executor) -> AsyncIterator[Executor]:
    """The executor to run with: wrapped to hand out agent tokens when a store is on the edge.

    Tokens are minted on each agent's first attempt and all revoked on leaving
    the block, however it is left.
    """
    edge = any(config.backend_for(s) is Backend.CLOUDFLARE for s in STORES)
    secret = config.cloudflare.api_token
    url = config.cloudflare.worker_url
    if not edge or isinstance(executor, _IN_PROCESS) or secret is None or not url:
        yield executor
        return
    client = EdgeClient(url, secret.get_secret_value(), retries=3)
    tokens = AgentTokens(client)
    try:
        yield TokenedExecutor(executor, tokens)
    finally:
        try:
            await tokens.revoke_all()
        finally:
            await client.aclose()
