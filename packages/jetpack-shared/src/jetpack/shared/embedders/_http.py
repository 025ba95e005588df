"""The shared machinery of the HTTP embedders: one client, retries, error mapping.

Retries: a 429 or 5xx answer, a timeout or a connection failure is retried with
jittered exponential back-off ("full jitter": a uniform delay between 0 and
``backoff_base * 2**attempt``, capped at ``backoff_max``; a ``Retry-After``
header is honoured up to the cap). Any other 4xx is final. Foreign errors are
translated at this boundary::

    401, 403                     -> AuthError
    429, 5xx, network, timeout   -> UnavailableError (after the last retry)
    other 4xx, malformed answer  -> EmbedderError

API keys live only in the client's default headers: never in ``repr``, log
lines or error messages.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, Self

import httpx

from jetpack.shared.embedders._base import EmbedderError, check_texts, check_vectors
from jetpack.shared.errors import AuthError, UnavailableError

__all__ = ["HTTPEmbedder", "backoff_delay"]

logger = logging.getLogger("jetpack.shared.embedders")

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(520, 531))


def backoff_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), with full jitter."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap)
    return random.uniform(0.0, min(cap, base * (2.0**attempt)))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off


def _error_detail(response: httpx.Response) -> str:
    """Describe an error body briefly, without any key."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        err = body.get("error") or body.get("errors")
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])[:200]
        if isinstance(err, list) and err and isinstance(err[0], dict):
            return str(err[0].get("message", err[0]))[:200]
        if isinstance(err, str):
            return err[:200]
    return str(body)[:200]


class HTTPEmbedder:
    """Base class of the HTTP embedders; subclasses build requests and read answers.

    Subclasses set :attr:`provider` and implement :meth:`_request_body`,
    :meth:`_request_path` and :meth:`_parse`.
    """

    provider = "http"
    max_batch = 256

    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._model = model
        self._dimensions = dimensions
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    @property
    def model(self) -> str:
        """The provider's model id, as sent in requests."""
        return self._model

    @property
    def name(self) -> str:
        """Model name recorded with each stored vector (``provider/model``)."""
        return f"{self.provider}/{self._model}"

    @property
    def dimensions(self) -> int:
        """Length of every returned vector."""
        return self._dimensions

    @property
    def base_url(self) -> str:
        """The service root requests go to."""
        return str(self._client.base_url)

    def __repr__(self) -> str:
        # Deliberately omits headers: they carry the API key.
        return (
            f"{type(self).__name__}(model={self._model!r}, dimensions={self._dimensions}, "
            f"base_url={self.base_url!r})"
        )

    def _request_path(self) -> str:
        raise NotImplementedError

    def _request_body(self, texts: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _parse(self, body: Any, count: int) -> Sequence[Sequence[float]]:
        raise NotImplementedError

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` remotely, ``max_batch`` per request, aligned with the input.

        Empty or whitespace-only texts raise
        :class:`~jetpack.shared.errors.ValidationError` naming the index before
        anything is sent (the services refuse or mis-handle them).
        """
        items = check_texts(texts, allow_blank=False)
        vectors: list[list[float]] = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start : start + self.max_batch]
            body = await self._post(self._request_path(), self._request_body(chunk))
            try:
                raw = self._parse(body, len(chunk))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise EmbedderError(
                    f"{self.provider} returned an unexpected answer: {exc!r}"
                ) from exc
            vectors.extend(
                check_vectors(
                    raw, expected=len(chunk), dimensions=self._dimensions, source=self.provider
                )
            )
        return vectors

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.post(path, json=payload)
            except httpx.TimeoutException as exc:
                failure: str = f"timed out ({type(exc).__name__})"
                cause: BaseException = exc
            except httpx.TransportError as exc:
                failure = f"could not be reached ({type(exc).__name__})"
                cause = exc
            else:
                status = response.status_code
                if status < 300:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise EmbedderError(
                            f"{self.provider} answered {status} with invalid JSON"
                        ) from exc
                detail = _error_detail(response)
                if status in (401, 403):
                    raise AuthError(f"{self.provider} refused the credentials ({status}): {detail}")
                if status not in _RETRY_STATUSES:
                    raise EmbedderError(f"{self.provider} refused the request ({status}): {detail}")
                failure = f"answered {status}: {detail}"
                cause = httpx.HTTPStatusError(failure, request=response.request, response=response)
                retry_after = _retry_after(response)
            if attempt >= self._max_retries:
                raise UnavailableError(
                    f"{self.provider} {failure}; gave up after {attempt + 1} attempts"
                ) from cause
            delay = backoff_delay(
                attempt, base=self._backoff_base, cap=self._backoff_max, retry_after=retry_after
            )
            logger.warning(
                "%s %s; retry %d/%d in %.2fs",
                self.provider,
                failure,
                attempt + 1,
                self._max_retries,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
