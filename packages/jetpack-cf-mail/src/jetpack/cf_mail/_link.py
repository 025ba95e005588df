"""A WebSocket to one of the project's Durable Objects, kept open by a runner task.

:class:`Link` connects, and after a lost connection reconnects after a
jittered exponential back-off, forever, until closed. Frames are JSON objects
with an ``op``; :meth:`Link.call` sends one with a fresh ``ref`` and waits for
the ``ok`` (or ``error``) carrying it. Subclasses say where to connect, what
to do once connected and how to read the other frames. :class:`LeaseSocket`
is the lease operations' link.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from jetpack.shared.errors import (
    AuthError,
    ConflictError,
    JetpackError,
    UnavailableError,
    ValidationError,
)

__all__ = ["LeaseSocket", "Link", "SocketDown", "frame_error"]

logger = logging.getLogger("jetpack.cf_mail")


class SocketDown(UnavailableError):
    """The link is not connected, or lost its connection before the answer (HTTP may serve)."""


def frame_error(frame: dict[str, Any]) -> JetpackError:
    """The typed error of an ``error`` frame."""
    code = str(frame.get("code", "error"))
    message = str(frame.get("message", "refused"))
    if code in ("invalid", "bad_json"):
        return ValidationError(str(frame.get("field") or "frame"), message)
    if code == "conflict":
        return ConflictError(message)
    return JetpackError(f"the Worker refused the frame ({code}): {message}")


def refusal(status: int) -> JetpackError:
    """The typed error of a refused upgrade."""
    if status in (401, 403):
        return AuthError(f"the Worker refused the WebSocket ({status}); check JETPACK_API_TOKEN")
    if status == 404:
        return JetpackError("the Worker has no mail module: redeploy it with jetpack-cf-mail")
    return UnavailableError(f"the Worker answered {status} to the WebSocket upgrade")


class Link:
    """One kept-open WebSocket (see the module docstring).

    Args:
        base_url: the Worker's base URL (``http://`` or ``https://``).
        token: the bearer token (never logged).
        path: the route, e.g. ``/api/mail/subscribe``.
        agent_id: the agent the socket speaks for (``agent_id`` query parameter).
        backoff_base / backoff_max: seconds; the wait before reconnect ``n`` is
            ``min(max, base × 2^n)``, jittered down by up to half.
        open_timeout: seconds allowed for one connection attempt (and for
            :meth:`start` to see the link established).
        call_timeout: seconds :meth:`call` waits for its answer.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        path: str,
        agent_id: str,
        *,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        open_timeout: float = 30.0,
        call_timeout: float = 10.0,
    ) -> None:
        self._base = "ws" + base_url.rstrip("/").removeprefix("http") + path
        self.__token = token
        self._agent_id = agent_id
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._open_timeout = open_timeout
        self._call_timeout = call_timeout
        self._ws: ClientConnection | None = None
        self._established = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._refs = itertools.count(1)
        self._calls: dict[str, asyncio.Future[Any]] = {}
        self._send_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.connections = 0
        """How many times the link connected (reconnects = connections - 1)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base!r}, agent={self._agent_id!r})"

    @property
    def connected(self) -> bool:
        """True while a connection is open and established."""
        return self._ws is not None and self._established.is_set()

    @property
    def running(self) -> bool:
        """True from :meth:`launch` until :meth:`close`."""
        return self._runner is not None

    def url(self, **query: str | int) -> str:
        """The route's URL with ``agent_id`` and ``query``."""
        return f"{self._base}?{urlencode({'agent_id': self._agent_id, **query})}"

    # -- lifecycle ------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the runner (connecting in the background); idempotent."""
        if self._runner is not None:
            return
        self._closing = False
        self._first = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(), name=f"{self!r}")

    async def start(self) -> None:
        """Launch and wait until established; a refused first connection raises its typed error."""
        self.launch()
        assert self._first is not None
        try:
            async with asyncio.timeout(self._open_timeout):
                await asyncio.shield(self._first)
        except TimeoutError:
            await self.close()
            raise UnavailableError(
                f"no WebSocket to {self._base} within {self._open_timeout:.0f} s"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def wait_established(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the link; whether it is established."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._established.wait()
        return self.connected

    async def close(self) -> None:
        """Stop reconnecting and close the connection."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await self.before_close(ws)
            with contextlib.suppress(Exception):
                await ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for task in list(self._background):
            task.cancel()
        self._fail_calls()

    def drop(self) -> None:
        """Cut the current connection abruptly (tests); the runner reconnects by itself."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    # -- frames ---------------------------------------------------------------------------

    def send_soon(self, ws: ClientConnection, frame: str) -> None:
        """Send ``frame`` from a task of its own (kept referenced until done)."""
        self.spawn(self.send(ws, frame))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, keeping a reference so it is not collected."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def send(self, ws: ClientConnection, frame: str) -> None:
        """Send one frame (a closed connection drops it: the runner is reconnecting)."""
        async with self._send_lock:
            try:
                await ws.send(frame)
            except ConnectionClosed:
                logger.debug("frame not sent: the connection closed")

    async def call(self, frame: dict[str, Any]) -> Any:
        """Send ``frame`` with a fresh ``ref``; the ``ok`` answer's ``r``, or its typed error.

        Raises :class:`SocketDown` when not connected or when the connection
        is lost before the answer.
        """
        ws = self._ws
        if ws is None or not self._established.is_set():
            raise SocketDown(f"{self!r} is not connected")
        ref = f"c{next(self._refs)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[ref] = future
        try:
            await self.send(ws, json.dumps({**frame, "ref": ref}, separators=(",", ":")))
            async with asyncio.timeout(self._call_timeout):
                return await future
        except TimeoutError:
            raise SocketDown(f"{self!r}: no answer within {self._call_timeout:.0f} s") from None
        finally:
            self._calls.pop(ref, None)

    def answer(self, frame: dict[str, Any]) -> bool:
        """Settle the call ``frame`` answers (``ok`` or ``error``); False if it answers none."""
        future = self._calls.get(str(frame.get("ref")))
        if future is None or future.done():
            return False
        if frame.get("op") == "ok":
            future.set_result(frame.get("r"))
        else:
            future.set_exception(frame_error(frame))
        return True

    def _fail_calls(self) -> None:
        for future in self._calls.values():
            if not future.done():
                future.set_exception(SocketDown("the connection was lost before the answer"))

    # -- what subclasses decide ----------------------------------------------------------

    def connect_url(self) -> str:
        """Where the next connection goes."""
        return self.url()

    async def on_open(self, ws: ClientConnection) -> None:
        """Just connected (default: established at once)."""
        self.establish()

    def on_frame(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        """A frame other than a call's answer (default: logged and dropped)."""
        if frame.get("op") == "error":
            logger.error("%r: %s", self, frame_error(frame))

    def on_lost(self) -> None:
        """The connection ended (before the next attempt)."""

    async def before_close(self, ws: ClientConnection) -> None:
        """Last frames before :meth:`close` closes the connection."""

    def establish(self) -> None:
        """The link is ready for use; the first time, :meth:`start` returns."""
        self._established.set()
        if self._first is not None and not self._first.done():
            self._first.set_result(None)

    # -- the runner -----------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._closing

    def _delay(self, attempt: int) -> float:
        delay = min(self._backoff_max, self._backoff_base * (2.0**attempt))
        return delay * random.uniform(0.5, 1.0)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping():
            try:
                async with connect(
                    self.connect_url(),
                    additional_headers={"Authorization": f"Bearer {self.__token}"},
                    open_timeout=self._open_timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                    max_size=64 * 1024 * 1024,
                    compression=None,
                    user_agent_header="jetpack-cf-mail",
                ) as ws:
                    self.connections += 1
                    attempt = 0
                    self._ws = ws
                    await self.on_open(ws)
                    async for raw in ws:
                        self._dispatch(ws, raw)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                error = refusal(exc.response.status_code)
                if self._fail_first(error):
                    return
                logger.error("%r refused: %s; retrying", self, error)
                attempt = max(attempt, 6)
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                logger.debug("%r lost: %s", self, type(exc).__name__)
            finally:
                self._ws = None
                self._established.clear()
                self._fail_calls()
                self.on_lost()
            if self._stopping():
                return
            delay = self._delay(attempt)
            attempt += 1
            logger.debug("%r reconnects in %.2f s", self, delay)
            await asyncio.sleep(delay)

    def _fail_first(self, error: JetpackError) -> bool:
        """Raise a refusal of the very first connection from :meth:`start`; True if so."""
        first = self._first
        if first is None or first.done() or self.connections > 0:
            return False
        if isinstance(error, UnavailableError):
            return False  # may pass: keep trying until the open timeout
        first.set_exception(error)
        return True

    def _dispatch(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
            op = frame["op"]
        except (ValueError, KeyError, TypeError):
            logger.warning("%r: unreadable frame dropped", self)
            return
        if op in ("ok", "error") and self.answer(frame):
            return
        self.on_frame(ws, frame)


class LeaseSocket(Link):
    """The link to the project's LeaseDO: each lease operation one ``call``."""
