"""CloudflareMailBus: the MailBus on the Jetpack Worker (Durable Objects), over HTTP and WebSocket.

Messages go through the project's MailboxDO: the bus holds one WebSocket to it
(:class:`~jetpack.cf_mail._socket.MailSocket`: reconnects, resumes from its
last seq, queues publishes while disconnected). Handlers run as in
jetpack-mcp-mail (:class:`jetpack.shared.delivery.Dispatcher`): a raising
handler is retried in the background, then dead-lettered, and never holds up
the bus. Leases, inbox, acknowledgements, presence and dead letters are HTTP
calls through the shared :class:`~jetpack.shared.edge.client.EdgeClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Literal, Self

from jetpack.cf_mail import _wire
from jetpack.cf_mail._leases import LeaseOps
from jetpack.cf_mail._link import LeaseSocket
from jetpack.cf_mail._options import OPTION_NAMES, Options
from jetpack.cf_mail._socket import MailSocket
from jetpack.shared import (
    AgentPresence,
    AgentStatus,
    AsyncStoreMixin,
    Message,
    MessageHandler,
    MessageType,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.delivery import DeadLetter, Dispatcher
from jetpack.shared.edge.client import EdgeClient, worker_credentials
from jetpack.shared.errors import UnavailableError, ValidationError
from jetpack.shared.registry import config_options
from jetpack.shared.rules import (
    check_agent_id,
    check_info,
    check_limit,
    check_message_id,
    compose_message,
    subscription_key,
)

__all__ = ["CloudflareMailBus"]

logger = logging.getLogger("jetpack.cf_mail")


class CloudflareMailBus(LeaseOps, AsyncStoreMixin):
    """The mail bus and file leases of one agent on the Jetpack Worker.

    Many machines share one project's mailbox and leases. Options (keyword-only,
    milliseconds): ``presence_window_ms`` (90 000), ``handler_attempts`` (4),
    ``handler_retry_base_ms`` (250), ``reconnect_base_ms`` (100),
    ``reconnect_max_ms`` (5 000), ``open_timeout_ms`` (30 000),
    ``ack_timeout_ms`` (10 000), ``request_timeout_ms`` (30 000), ``retries`` (4).

    Args:
        agent_id: the agent this bus speaks for.
        worker_url: the Worker's URL (``jetpack edge dev`` prints a local one).
        api_token: a project token, or one bound to ``agent_id``.
    """

    def __init__(self, agent_id: str, worker_url: str, api_token: str, **options: Any) -> None:
        self._agent_id = check_agent_id(agent_id)
        self._options = Options.parse(options)
        self._client = EdgeClient(
            worker_url,
            api_token,
            module="mail",
            timeout=self._options.request_timeout_ms / 1000,
            retries=self._options.retries,
        )
        link = {
            "backoff_base": self._options.reconnect_base_ms / 1000,
            "backoff_max": self._options.reconnect_max_ms / 1000,
            "open_timeout": self._options.open_timeout_ms / 1000,
        }
        token = api_token.strip()
        self._socket = MailSocket(
            self._client.url,
            token,
            self._agent_id,
            self._received,
            ack_timeout=self._options.ack_timeout_ms / 1000,
            **link,
        )
        self._leases = LeaseSocket(
            self._client.url,
            token,
            _wire.LEASE_SOCKET,
            self._agent_id,
            call_timeout=self._options.request_timeout_ms / 1000,
            **link,
        )
        self._dispatcher = Dispatcher(
            attempts=self._options.handler_attempts,
            retry_base_ms=self._options.handler_retry_base_ms,
            dead_letter=self._record_dead_letter,
        )
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._open = False
        self._granted: dict[str, int] = {}

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str, **options: Any) -> Self:
        """Build an unopened bus from ``[cloudflare]`` (``worker_url``) and ``JETPACK_API_TOKEN``.

        Options come from a ``[cf_mail]`` table (unknown keys there are logged and
        left out), overridden by ``options`` (unknown ones refused by name).
        """
        worker_url, api_token = worker_credentials(config)
        chosen = {**config_options(config, "cf_mail", OPTION_NAMES), **options}
        return cls(agent_id, worker_url, api_token, **chosen)

    def __repr__(self) -> str:
        return f"CloudflareMailBus(agent_id={self._agent_id!r}, worker_url={self._client.url!r})"

    @property
    def agent_id(self) -> str:
        """The agent this bus speaks for."""
        return self._agent_id

    @property
    def connected(self) -> bool:
        """True while the WebSocket is up (publishes queue while it is not)."""
        return self._socket.connected

    @property
    def queued(self) -> int:
        """Publishes the mailbox has not answered yet (sent again on reconnect)."""
        return self._socket.queued

    # -- lifecycle ------------------------------------------------------------------

    async def initialize(self) -> None:
        """Check the Worker, connect, receive the backlog, start delivering (idempotent).

        Subscribe before opening to receive the backlog: the unacknowledged
        direct messages and, for an agent that ran before, the broadcasts of its
        types since its saved cursor.
        """
        if self._open:
            return
        await self._client.open()
        self._socket.set_types(self._dispatcher.keys())
        try:
            await self._socket.start()
        except BaseException:
            await self._client.aclose()
            raise
        self._open = True
        self._runner = asyncio.create_task(self._run(), name=f"jetpack-cf-mail:{self._agent_id}")

    async def shutdown(self) -> None:
        """Stop delivery, release the leases acquired through this bus, close (idempotent).

        Leases the same agent holds through other buses stay until released
        or expired. Publishes still unanswered are dropped (and logged).
        """
        if not self._open:
            return
        self._open = False
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await self._dispatcher.close()
        await self._release_granted()
        await self._leases.close()
        if self._socket.queued:
            logger.warning(
                "mail bus %s closes with %d publishes the mailbox never answered (dropped)",
                self._agent_id,
                self._socket.queued,
            )
        await self._socket.close()
        await self._client.aclose()

    open = initialize
    aclose = shutdown

    def _require_open(self) -> None:
        if not self._open:
            raise UnavailableError(f"mail bus {self._agent_id!r} is not open; use 'async with'")

    # -- delivery -------------------------------------------------------------------

    def _received(self, message: Message) -> None:
        self._queue.put_nowait(message)

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                handled, ok = await self._dispatcher.dispatch(message)
            except Exception:  # pragma: no cover - the dispatcher catches handler errors
                logger.exception("mail bus %s: delivery error on %s", self._agent_id, message.id)
                continue
            if message.to_agent is not None and not message.ack_required and handled and ok:
                self._socket.mark_read([message.id])
            if self._queue.empty() and message.seq is not None:
                self._socket.report_cursor(message.seq)

    async def _record_dead_letter(
        self, message: Message, handler: str, error: str, attempts: int
    ) -> None:
        body = {
            "agent_id": self._agent_id,
            "message": message.model_dump(mode="json"),
            "handler": handler[:500],
            "error": error[:10_000],
            "attempts": attempts,
        }
        await self._client.request("POST", _wire.DEAD_LETTERS, json=body)

    async def list_dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Messages whose handler on this agent failed every attempt, oldest first."""
        limit = check_limit(limit)
        self._require_open()
        params = {"agent_id": self._agent_id, "limit": limit}
        return _wire.dead_letters_of(
            await self._client.json("GET", _wire.DEAD_LETTERS, params=params)
        )

    # -- messages -------------------------------------------------------------------

    async def _send(
        self,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None,
        to_agent: str | None,
        correlation_id: str | None,
        ack_required: bool | None,
    ) -> Message:
        message = compose_message(
            self._agent_id, type, payload, to_agent, correlation_id, ack_required
        )
        self._require_open()
        sent = await self._socket.publish(message)
        return sent if sent is not None else message

    async def publish(
        self,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Broadcast to every live subscriber of ``type`` (and ``"*"``) in the project.

        Returns the stored message (with its seq). While the WebSocket is down
        the message is queued and sent on reconnect; it is returned with ``seq``
        None, and delivered once.
        """
        return await self._send(type, payload, None, correlation_id, ack_required)

    def subscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Call ``handler`` for each message of ``type`` (``"*"``: all) from now on."""
        if not callable(handler):
            raise ValidationError("handler", "must be callable")
        self._dispatcher.add(subscription_key(type), handler)
        self._socket.set_types(self._dispatcher.keys())

    def unsubscribe(self, type: MessageType | Literal["*"] | str, handler: MessageHandler) -> None:
        """Stop calling ``handler`` for ``type``."""
        self._dispatcher.remove(subscription_key(type), handler)
        self._socket.set_types(self._dispatcher.keys())

    async def send_to(
        self,
        agent_id: str,
        type: MessageType | str | Message,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ack_required: bool | None = None,
    ) -> Message:
        """Send a direct message, kept until ``agent_id`` acknowledges it (even if offline)."""
        check_agent_id(agent_id)
        return await self._send(type, payload, agent_id, correlation_id, ack_required)

    async def acknowledge(self, message_id: str) -> bool:
        """Mark a direct message to this agent as handled. False if unknown or not ours."""
        check_message_id(message_id)
        self._require_open()
        body = {"agent_id": self._agent_id, "message_id": message_id}
        return bool((await self._client.json("POST", _wire.ACK, json=body))["acknowledged"])

    async def fetch_inbox(self, *, limit: int = 100, include_acked: bool = False) -> list[Message]:
        """Direct messages to this agent, oldest first (unacknowledged only by default)."""
        limit = check_limit(limit)
        self._require_open()
        params = {
            "agent_id": self._agent_id,
            "limit": limit,
            "include_acked": "true" if include_acked else "false",
        }
        return _wire.messages_of(await self._client.json("GET", _wire.INBOX, params=params))

    # -- presence -------------------------------------------------------------------

    async def send_heartbeat(
        self, status: AgentStatus = AgentStatus.IDLE, info: Mapping[str, Any] | None = None
    ) -> None:
        """Record that this agent is alive and broadcast a ``heartbeat`` message."""
        try:
            reported = AgentStatus(status)
        except ValueError:
            raise ValidationError("status", f"unknown agent status {status!r}") from None
        extra = check_info(info)
        self._require_open()
        body = {"agent_id": self._agent_id, "status": reported.value, "info": extra}
        await self._client.request("POST", _wire.HEARTBEAT, json=body)

    async def list_agents(self, *, include_offline: bool = False) -> list[AgentPresence]:
        """Agents seen recently; silent longer than the presence window → offline."""
        self._require_open()
        params = {
            "window_ms": self._options.presence_window_ms,
            "include_offline": "true" if include_offline else "false",
        }
        return _wire.agents_of(await self._client.json("GET", _wire.AGENTS, params=params))
