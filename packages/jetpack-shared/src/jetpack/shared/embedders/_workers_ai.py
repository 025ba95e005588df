"""Cloudflare Workers AI embeddings over the REST API, default ``@cf/baai/bge-base-en-v1.5``.

Wire format::

    POST https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/run/{model}
    Authorization: Bearer {api_token}
    request   {"text": ["...", ...]}
    response  {"result": {"shape": [n, 768], "data": [[...], ...]},
               "success": true, "errors": [], "messages": []}

The account id and token come from the arguments or ``CLOUDFLARE_ACCOUNT_ID``
and ``CLOUDFLARE_API_TOKEN``. An answer with ``"success": false`` is an error
even with status 200.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from jetpack.shared.embedders._http import HTTPEmbedder
from jetpack.shared.errors import AuthError

__all__ = ["WorkersAIEmbedder"]

_DEFAULT_DIMENSIONS = {
    "@cf/baai/bge-small-en-v1.5": 384,
    "@cf/baai/bge-base-en-v1.5": 768,
    "@cf/baai/bge-large-en-v1.5": 1024,
    "@cf/baai/bge-m3": 1024,
}
_API_ROOT = "https://api.cloudflare.com/client/v4"


class WorkersAIEmbedder(HTTPEmbedder):
    """Embeds with Cloudflare Workers AI (the same model the edge memory store can use)."""

    provider = "workers-ai"
    max_batch = 100  # the bge models accept at most 100 texts per call

    def __init__(
        self,
        model: str = "@cf/baai/bge-base-en-v1.5",
        *,
        account_id: str | None = None,
        api_token: str | None = None,
        dimensions: int | None = None,
        api_root: str = _API_ROOT,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        account = account_id if account_id is not None else os.environ.get("CLOUDFLARE_ACCOUNT_ID")
        token = api_token if api_token is not None else os.environ.get("CLOUDFLARE_API_TOKEN")
        if not account or not token:
            raise AuthError(
                "Workers AI embedder needs account_id= and api_token= "
                "(or CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN)"
            )
        size = dimensions or _DEFAULT_DIMENSIONS.get(model)
        if size is None:
            raise ValueError(f"unknown Workers AI model {model!r}: pass dimensions=")
        self._account_id = account
        super().__init__(
            model=model,
            dimensions=size,
            base_url=f"{api_root.rstrip('/')}/accounts/{account}/ai/run/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            transport=transport,
        )

    @property
    def name(self) -> str:
        """Model name recorded with each stored vector (Workers AI ids are already namespaced)."""
        return self.model

    def _request_path(self) -> str:
        return self.model

    def _request_body(self, texts: list[str]) -> dict[str, Any]:
        return {"text": texts}

    def _parse(self, body: Any, count: int) -> Sequence[Sequence[float]]:
        if not body.get("success", False):
            errors = body.get("errors") or []
            raise ValueError(f"success is false: {errors!r}"[:300])
        data: Sequence[Sequence[float]] = body["result"]["data"]
        return data
