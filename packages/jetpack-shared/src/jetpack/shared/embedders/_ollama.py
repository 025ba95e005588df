"""Ollama embeddings (``POST /api/embed``), default ``nomic-embed-text`` (768 dims).

Wire format::

    request   {"model": "nomic-embed-text", "input": ["...", ...], "truncate": true}
    response  {"model": "nomic-embed-text", "embeddings": [[...], ...], ...}

``/api/embed`` (Ollama 0.3+) takes a batch; the older one-text
``/api/embeddings`` endpoint is not used. No key: the host comes from
``host``, ``OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from jetpack.shared.embedders._http import HTTPEmbedder

__all__ = ["OllamaEmbedder", "ollama_base_url"]

_DEFAULT_DIMENSIONS = {
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
    "snowflake-arctic-embed": 1024,
    "bge-m3": 1024,
}


def ollama_base_url(host: str | None) -> str:
    """Normalise an ``OLLAMA_HOST``-style value (``host``, ``host:port`` or a URL)."""
    value = (host or "").strip() or "127.0.0.1:11434"
    if "://" not in value:
        value = f"http://{value}"
    scheme, _, rest = value.partition("://")
    hostport = rest.split("/", 1)[0]
    if hostport.startswith("0.0.0.0"):  # a bind address, not a place to connect to
        hostport = "127.0.0.1" + hostport[len("0.0.0.0") :]
    if ":" not in hostport.rsplit("]", 1)[-1]:
        hostport += ":11434" if scheme == "http" else ""
    return f"{scheme}://{hostport}/"


class OllamaEmbedder(HTTPEmbedder):
    """Embeds with a local or remote Ollama server."""

    provider = "ollama"
    max_batch = 64

    def __init__(
        self,
        model: str = "nomic-embed-text",
        *,
        host: str | None = None,
        dimensions: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        size = dimensions or _DEFAULT_DIMENSIONS.get(model.split(":", 1)[0])
        if size is None:
            raise ValueError(f"unknown Ollama model {model!r}: pass dimensions=")
        super().__init__(
            model=model,
            dimensions=size,
            base_url=ollama_base_url(host if host is not None else os.environ.get("OLLAMA_HOST")),
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            transport=transport,
        )

    def _request_path(self) -> str:
        return "api/embed"

    def _request_body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.model, "input": texts, "truncate": True}

    def _parse(self, body: Any, count: int) -> Sequence[Sequence[float]]:
        embeddings: Sequence[Sequence[float]] = body["embeddings"]
        return embeddings
