"""The HTTP client layer every cf store stands on (``pip install "jetpack-shared[edge]"``).

:class:`EdgeClient` holds one ``httpx.AsyncClient`` (keep-alive) for one store
and turns the Worker's answers into Jetpack's typed errors:

==========================  ============================================
answer                      raised
==========================  ============================================
401, 403                    :class:`~jetpack.shared.errors.AuthError`
404                         :class:`~jetpack.shared.errors.NotFoundError`
409                         :class:`~jetpack.shared.errors.ConflictError`
400, 413, 422               :class:`~jetpack.shared.errors.ValidationError` naming the field
429, 5xx (after retries)    :class:`~jetpack.shared.errors.UnavailableError`
no answer (after retries)   :class:`~jetpack.shared.errors.UnavailableError`
==========================  ============================================

Retries (jittered exponential back-off, honouring ``Retry-After``) happen only
where repeating cannot write twice: idempotent methods, and mutations, which
always carry an ``Idempotency-Key`` (the Worker answers a repeat with the first
answer; inside :func:`jetpack.shared.repeatable` a caller's own repeat of a call
sends the same key too). A body over the Worker's 1 MiB limit is sent in parts
(``/api/uploads``) and reassembled there, so a big batch stays one
transaction. The token never appears in a repr, a log line or a message. The
Worker's API version is checked once, at :meth:`EdgeClient.open`.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from jetpack.shared._repeat import repeat_scope
from jetpack.shared.config import JetpackConfig
from jetpack.shared.edge import API_VERSION
from jetpack.shared.errors import (
    AuthError,
    ConflictError,
    JetpackError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)

__all__ = [
    "MAX_BODY_BYTES",
    "ApiVersionError",
    "EdgeClient",
    "error_from_response",
    "worker_credentials",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""The Worker's request body limit; larger bodies go in parts."""
_PART_BYTES = MAX_BODY_BYTES - 4096
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_LOOPBACK = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})


def worker_credentials(config: JetpackConfig) -> tuple[str, str]:
    """The Worker's URL (``[cloudflare] worker_url``) and token (``JETPACK_API_TOKEN``).

    Either missing is a ValidationError naming it (``cloudflare.worker_url``,
    ``cloudflare.api_token``) and saying where to set it.
    """
    edge = config.cloudflare
    if not edge.worker_url:
        raise ValidationError(
            "cloudflare.worker_url",
            "is not set (JETPACK_WORKER_URL or [cloudflare] worker_url)",
        )
    if edge.api_token is None or not edge.api_token.get_secret_value():
        raise ValidationError("cloudflare.api_token", "is not set (JETPACK_API_TOKEN)")
    return edge.worker_url, edge.api_token.get_secret_value()


class ApiVersionError(JetpackError):
    """The Worker speaks another API version (or lacks a module) than this client needs."""


def _encode(body: Any) -> bytes:
    """Compact, ASCII-only JSON (so any byte boundary is a character boundary)."""
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError("body", f"not JSON-serialisable: {exc}") from exc
    except RecursionError as exc:
        raise ValidationError("body", "nested too deeply to send") from exc
    return text.encode("ascii")


def _idempotency_key(method: str, path: str, body: bytes | None) -> str:
    """A fresh key, or inside ``repeatable(scope)`` one derived from the scope and the request.

    The same call repeated in the same scope sends the same key, so the Worker
    answers the repeat with the first answer (see :func:`jetpack.shared.repeatable`).
    """
    scope = repeat_scope()
    if scope is None:
        return secrets.token_hex(16)
    digest = hashlib.sha256()
    for part in (scope.encode(), method.encode(), path.encode(), body or b""):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return "r-" + digest.hexdigest()[:40]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - time.time())


def _error_body(response: httpx.Response) -> tuple[str, str, str | None]:
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "http_error", f"HTTP {response.status_code}", None
    field = error.get("field")
    return (
        str(error.get("code", "http_error")),
        str(error.get("message", f"HTTP {response.status_code}")),
        str(field) if field is not None else None,
    )


def error_from_response(
    response: httpx.Response, *, not_found: tuple[str, str] | None = None
) -> JetpackError:
    """The typed error for a refusal (``not_found``: the kind and id a 404 names)."""
    status = response.status_code
    code, message, field = _error_body(response)
    if status == 401:
        return AuthError(f"the Worker refused the token: {message} (check JETPACK_API_TOKEN)")
    if status == 403:
        return AuthError(f"forbidden: {message}")
    if status == 404:
        kind, ident = not_found or ("resource", response.request.url.path)
        return NotFoundError(kind, ident)
    if status == 409:
        return ConflictError(message)
    if status in (400, 413, 422):
        return ValidationError(field or "body", message)
    if status == 429 or status >= 500:
        return UnavailableError(f"the Worker answered {status} ({code}): {message}")
    return JetpackError(f"unexpected answer {status} ({code}): {message}")


class EdgeClient:
    """One store's connection to the Jetpack Worker.

    Args:
        worker_url: the Worker's base URL (``https://jetpack.example.workers.dev``).
        api_token: a project (or agent-bound) token; kept out of reprs and logs.
        module: a Worker module this store needs (``tasks``); checked at open.
        timeout: seconds to wait for an answer (connect: ``connect_timeout``).
        retries: further attempts after a failed one, where retrying is safe.
        backoff_base / backoff_max: the back-off before retry ``n`` is
            ``min(max, base × 2^n)``, jittered down by up to half.
        retry_after_max: the longest ``Retry-After`` honoured, in seconds.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        worker_url: str,
        api_token: str,
        *,
        module: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retries: int = 4,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        retry_after_max: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(worker_url, str) or not worker_url.startswith(("http://", "https://")):
            raise ValidationError("worker_url", "must be an http:// or https:// URL")
        if not isinstance(api_token, str) or not api_token.strip():
            raise ValidationError("api_token", "is empty; set JETPACK_API_TOKEN")
        if retries < 0:
            raise ValidationError("retries", "must be >= 0")
        self.url = worker_url.rstrip("/")
        self.__token = api_token.strip()
        self.module = module
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._checked = False
        self._open_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"EdgeClient({self.url!r})"

    # -- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        """Open the connection pool and check the Worker's API version (once)."""
        async with self._open_lock:
            if self._http is None:
                headers = {
                    "Authorization": f"Bearer {self.__token}",
                    "User-Agent": "jetpack-edge-client",
                    "Accept": "application/json",
                }
                if httpx.URL(self.url).host in _LOOPBACK:
                    # A local Worker (jetpack edge dev) would gzip every answer: on
                    # loopback that only costs CPU on both sides.
                    headers["Accept-Encoding"] = "identity"
                self._http = httpx.AsyncClient(
                    base_url=self.url,
                    headers=headers,
                    timeout=self._timeout,
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                    transport=self._transport,
                )
            if not self._checked:
                try:
                    await self._check_api()
                except BaseException:
                    http, self._http = self._http, None
                    await http.aclose()
                    raise
                self._checked = True

    async def aclose(self) -> None:
        """Close the connection pool (the client can be opened again)."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _check_api(self) -> None:
        response = await self._send("GET", "/api/health", None, {}, None, idempotent=True)
        if response.status_code != 200:
            raise error_from_response(response)
        health = response.json()
        version = health.get("api_version") if isinstance(health, dict) else None
        if version != API_VERSION:
            raise ApiVersionError(
                f"the Worker at {self.url} speaks API version {version}; this client speaks "
                f"{API_VERSION}: upgrade the older side (pip install -U, or jetpack edge deploy)"
            )
        modules = health.get("modules", [])
        if self.module is not None and self.module not in modules:
            raise ApiVersionError(
                f"the Worker at {self.url} has no {self.module!r} module (it serves "
                f"{', '.join(modules) or 'none'}): redeploy it with the cf package installed"
            )

    # -- requests -------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        allow: Collection[int] = (),
        not_found: tuple[str, str] | None = None,
        read: bool = False,
    ) -> httpx.Response:
        """Send a request; a success (2xx or a status in ``allow``) comes back, a refusal raises.

        Mutations (POST, PATCH) carry a fresh ``Idempotency-Key``, kept across
        retries (inside :func:`jetpack.shared.repeatable`, a key derived from its
        scope and the request, so a repeated call is the same request).
        ``read=True`` marks a POST that only reads (a search whose arguments
        travel in the body): it goes without a key (the Worker keeps no answer
        for it) and is retried like a GET. A body over 1 MiB is uploaded in
        parts first.
        """
        if self._http is None or not self._checked:
            await self.open()
        method = method.upper()
        body = None if json is None else _encode(json)
        headers: dict[str, str] = {}
        idempotent = method in _IDEMPOTENT or read
        if not idempotent:
            headers["Idempotency-Key"] = _idempotency_key(method, path, body)
        if body is not None:
            headers["Content-Type"] = "application/json"
            if len(body) > _PART_BYTES:
                headers["Jetpack-Upload"] = await self._upload(body)
                body = b""
        response = await self._send(method, path, body, headers, params, idempotent=True)
        if 200 <= response.status_code < 300 or response.status_code in allow:
            return response
        raise error_from_response(response, not_found=not_found)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the answer's JSON."""
        response = await self.request(method, path, **kwargs)
        return response.json()

    async def _upload(self, body: bytes) -> str:
        upload_id = secrets.token_hex(12)
        parts = [body[i : i + _PART_BYTES] for i in range(0, len(body), _PART_BYTES)]
        logger.debug("uploading a %d-byte body in %d parts", len(body), len(parts))
        for index, part in enumerate(parts):
            path = f"/api/uploads/{upload_id}/{index}"
            response = await self._send(
                "PUT", path, part, {"Content-Type": "text/plain"}, None, idempotent=True
            )
            if response.status_code != 200:
                raise error_from_response(response)
        return f"{upload_id}; parts={len(parts)}"

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2.0**attempt))
        delay *= random.uniform(0.5, 1.0)
        if response is not None:
            after = _retry_after(response)
            if after is not None:
                delay = max(delay, min(after, self.retry_after_max))
        return delay

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        params: Mapping[str, str | int] | None,
        *,
        idempotent: bool,
    ) -> httpx.Response:
        http = self._http
        if http is None:
            raise UnavailableError(f"the client for {self.url} is closed")
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                response = await http.request(
                    method, path, content=body, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                if not idempotent or attempt >= self.retries:
                    raise UnavailableError(
                        f"the Worker at {self.url} did not answer {method} {path}: "
                        f"{type(exc).__name__}"
                    ) from exc
                delay = self._delay(attempt, None)
                logger.debug(
                    "%s %s: %s; retrying in %.2f s", method, path, type(exc).__name__, delay
                )
            else:
                elapsed = (time.perf_counter() - started) * 1000
                logger.debug("%s %s -> %d (%.1f ms)", method, path, response.status_code, elapsed)
                retry = response.status_code in _RETRY_STATUSES or (
                    response.status_code == 409 and _error_body(response)[0] == "in_progress"
                )
                if not retry or not idempotent or attempt >= self.retries:
                    return response
                delay = self._delay(attempt, response)
                logger.debug(
                    "%s %s -> %d; retrying in %.2f s", method, path, response.status_code, delay
                )
            attempt += 1
            await asyncio.sleep(delay)
