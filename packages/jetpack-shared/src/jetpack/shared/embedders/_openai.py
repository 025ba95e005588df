"""OpenAI embeddings (``POST /v1/embeddings``), default ``text-embedding-3-small``.

Wire format::

    request   {"model": "text-embedding-3-small", "input": ["...", ...],
               "encoding_format": "float"[, "dimensions": 512]}
    response  {"object": "list", "model": "...",
               "data": [{"object": "embedding", "index": 0, "embedding": [...]}, ...],
               "usage": {...}}

Rows are put back in input order by their ``index``. Works with any
OpenAI-compatible server through ``base_url`` / ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from jetpack.shared.embedders._http import HTTPEmbedder
from jetpack.shared.errors import AuthError

__all__ = ["OpenAIEmbedder"]

_DEFAULT_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder(HTTPEmbedder):
    """Embeds with OpenAI's embeddings API.

    The key comes from ``api_key`` or ``OPENAI_API_KEY``; the root URL from
    ``base_url``, ``OPENAI_BASE_URL`` or ``https://api.openai.com/v1``.
    ``dimensions`` defaults to the model's native size; a smaller value is sent
    to the API (text-embedding-3 models shorten their vectors on request).
    """

    provider = "openai"
    max_batch = 512  # the API takes up to 2048 inputs; smaller requests retry cheaper

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise AuthError("OpenAI embedder needs an API key: pass api_key= or set OPENAI_API_KEY")
        native = _DEFAULT_DIMENSIONS.get(model)
        if dimensions is None and native is None:
            raise ValueError(f"unknown OpenAI model {model!r}: pass dimensions=")
        size = dimensions if dimensions is not None else native
        assert size is not None
        self._send_dimensions = dimensions is not None and dimensions != native
        super().__init__(
            model=model,
            dimensions=size,
            base_url=(
                base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
            ).rstrip("/")
            + "/",
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            transport=transport,
        )

    def _request_path(self) -> str:
        return "embeddings"

    def _request_body(self, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self._send_dimensions:
            body["dimensions"] = self.dimensions
        return body

    def _parse(self, body: Any, count: int) -> Sequence[Sequence[float]]:
        rows = sorted(body["data"], key=lambda row: int(row["index"]))
        indexes = [int(row["index"]) for row in rows]
        if indexes != list(range(count)):
            raise ValueError(f"indexes {indexes[:5]}... do not cover 0..{count - 1}")
        return [row["embedding"] for row in rows]
