"""``get_embedder``: turn a config value into an embedder.

Specs::

    "default", "local"        LocalEmbedder (all-MiniLM-L6-v2, offline, 384 dims)
    "openai[:MODEL]"          OpenAIEmbedder (text-embedding-3-small, 1536)
    "ollama[:MODEL]"          OllamaEmbedder (nomic-embed-text, 768)
    "workers-ai[:MODEL]"      WorkersAIEmbedder (@cf/baai/bge-base-en-v1.5, 768)
    None, "none", ""          no embedder (text search only)
    an Embedder instance      returned unchanged
"""

from __future__ import annotations

from jetpack.shared.embedders._base import Embedder
from jetpack.shared.embedders._local import LocalEmbedder
from jetpack.shared.embedders._ollama import OllamaEmbedder
from jetpack.shared.embedders._openai import OpenAIEmbedder
from jetpack.shared.embedders._workers_ai import WorkersAIEmbedder
from jetpack.shared.errors import ValidationError

__all__ = ["EMBEDDER_SPECS", "get_embedder"]

EMBEDDER_SPECS = ("default", "local", "openai", "ollama", "workers-ai", "none")
"""The spec names :func:`get_embedder` understands."""


def get_embedder(spec: str | Embedder | None) -> Embedder | None:
    """Return the embedder named by ``spec`` (see the module docstring), or ``None``.

    Remote specs may name a model after a colon, e.g. ``"ollama:mxbai-embed-large"``.
    Keys and hosts come from the environment (``OPENAI_API_KEY``, ``OLLAMA_HOST``,
    ``CLOUDFLARE_ACCOUNT_ID``/``CLOUDFLARE_API_TOKEN``); build the class directly
    to pass them as arguments. An unknown spec raises
    :class:`~jetpack.shared.errors.ValidationError` for field ``embedder``.
    """
    if spec is None:
        return None
    if not isinstance(spec, str):
        if isinstance(spec, Embedder):
            return spec
        raise ValidationError(
            "embedder", f"expected a spec string or an Embedder, got {type(spec).__name__}"
        )
    kind, _, model = spec.strip().partition(":")
    kind = kind.lower()
    if kind in ("", "none"):
        return None
    if kind in ("default", "local"):
        if model:
            raise ValidationError(
                "embedder", "the local embedder takes a directory, not a model name"
            )
        return LocalEmbedder()
    if kind == "openai":
        return OpenAIEmbedder(model) if model else OpenAIEmbedder()
    if kind == "ollama":
        return OllamaEmbedder(model) if model else OllamaEmbedder()
    if kind in ("workers-ai", "workers_ai", "cloudflare"):
        return WorkersAIEmbedder(model) if model else WorkersAIEmbedder()
    raise ValidationError(
        "embedder", f"unknown embedder {spec!r}; expected one of {', '.join(EMBEDDER_SPECS)}"
    )
