"""CloudflareMemoryStore: the MemoryStore on the Jetpack Worker, over HTTP.

Memories, their full-text index and their vectors live in the project's
memory object on the Worker (``worker/store.ts``); this client validates input
locally (bad input never leaves the machine), embeds texts with its embedder
(the local all-MiniLM-L6-v2 by default, as jetpack-cass, so local and edge
vectors share one space), sends one request per call through the shared
:class:`~jetpack.shared.edge.client.EdgeClient`, and fuses the two rankings of
a hybrid search with :func:`jetpack.shared.rules.fuse_hybrid`, as the local
store does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

from jetpack.cf_cass import _wire
from jetpack.shared import (
    CALLER_MODEL,
    ID_PATTERN,
    AsyncStoreMixin,
    Embedder,
    MemoryEntry,
    MemoryInput,
    MemoryStats,
    MemoryType,
    Page,
    parse,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.edge.client import EdgeClient
from jetpack.shared.errors import BackendNotInstalledError, NotFoundError, ValidationError
from jetpack.shared.registry import config_options
from jetpack.shared.rules import check_embedding, check_options, check_text, fuse_hybrid

__all__ = ["MAX_LIMIT", "CloudflareMemoryStore"]

logger = logging.getLogger(__name__)

MAX_LIMIT = 10_000
"""Largest ``limit`` (and ``batch_size``) accepted, as jetpack-cass."""

_ID = re.compile(ID_PATTERN)
_OPTIONS = ("embedder", "max_entries", "protected_types", "timeout", "retries")
_EXTRA = '"jetpack-cf-cass[local-embedder]"'


def _known(memory_id: object) -> bool:
    """Whether ``memory_id`` could name a stored memory (ids are checked at creation)."""
    return isinstance(memory_id, str) and _ID.match(memory_id) is not None


def _check_limit(limit: object, field: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(field, f"must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _check_unit(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, "must be a number between 0 and 1")
    if not 0.0 <= float(value) <= 1.0:
        raise ValidationError(field, "must be between 0 and 1")
    return float(value)


def _parse_type(value: object, field: str = "type") -> MemoryType:
    try:
        return value if isinstance(value, MemoryType) else MemoryType(str(value))
    except ValueError:
        raise ValidationError(field, f"unknown memory type {value!r}") from None


def _check_vector(values: object, dims: int | None = None) -> list[float]:
    """A vector the store can keep (finite, non-zero, fits float32), or ValidationError."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValidationError("embedding", "must be a sequence of numbers")
    try:
        vector = [float(v) for v in values]
        check_embedding(vector)
    except (TypeError, ValueError) as error:
        raise ValidationError("embedding", str(error)) from error
    if dims is not None and len(vector) != dims:
        raise ValidationError("embedding", f"has {len(vector)} dimensions; expected {dims}")
    return vector


def _resolve_embedder(spec: Embedder | str | None) -> tuple[Embedder | None, bool]:
    """(embedder, owned): build one from a spec string; an instance is the caller's.

    ``"default"`` without the local model (or without the ``local-embedder``
    extra) logs a warning and gives None: the Worker then embeds with Workers
    AI where it is bound, and searches text otherwise.
    """
    if spec is None or not isinstance(spec, str):
        if spec is not None and not isinstance(spec, Embedder):
            raise ValidationError("embedder", "expected an Embedder, a spec string or None")
        return spec, False
    name = spec.strip().lower()
    if name in ("", "none"):
        return None, False
    try:
        from jetpack.shared.embedders import get_embedder
    except ImportError as error:
        if name != "default":
            raise BackendNotInstalledError(f"embedder {spec}", _EXTRA) from error
        logger.warning("no embedders installed (pip install %s); no local vectors", _EXTRA)
        return None, False
    try:
        return get_embedder(spec), True
    except BackendNotInstalledError as error:
        if name != "default":
            raise
        logger.warning("no local embedding model installed; no local vectors (%s)", error)
        return None, False


class CloudflareMemoryStore(AsyncStoreMixin):
    """Memories on the Jetpack Worker: agents on many machines learn from each other.

    ::

        async with CloudflareMemoryStore(url, token) as memory:
            await memory.store({"type": "agent_learning", "content": "Use WAL for SQLite"})
            hits = await memory.hybrid_search("sqlite journal mode")

    Args:
        worker_url: the Worker's URL (``jetpack edge dev`` prints a local one).
        api_token: a project token, or an agent-bound one (``jetpack edge token``).
        embedder: an Embedder, a spec for :func:`jetpack.shared.embedders.get_embedder`
            (``"default"`` = the local all-MiniLM-L6-v2, as jetpack-cass: local
            and edge vectors share one space), or None (vectors only when
            supplied, or made by the Worker's Workers AI where it is bound).
        max_entries: the project holds at most this many; a store that
            overflows it evicts the lowest retention scores down to 95 % of it.
        protected_types: kept by :meth:`compact`, evicted last by :meth:`adaptive_compact`.
        timeout: seconds to wait for the Worker per request.
        retries: further attempts after a failed request (all are safe to repeat).
    """

    def __init__(
        self,
        worker_url: str,
        api_token: str,
        *,
        embedder: Embedder | str | None = "default",
        max_entries: int = 10_000,
        protected_types: Iterable[MemoryType | str] = (MemoryType.CODEBASE_KNOWLEDGE,),
        timeout: float = 30.0,
        retries: int = 4,
        **unknown: object,
    ) -> None:
        check_options(unknown, _OPTIONS)
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValidationError("max_entries", "must be an integer >= 1")
        self.max_entries = max_entries
        self.protected_types = frozenset(_parse_type(t, "protected_types") for t in protected_types)
        self._client = EdgeClient(
            worker_url, api_token, module="memory", timeout=timeout, retries=retries
        )
        self._embedder, self._owns_embedder = _resolve_embedder(embedder)

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str, **options: Any) -> Self:
        """Build from ``[cloudflare]`` (``worker_url``) and ``JETPACK_API_TOKEN``.

        Options (``embedder``, ``max_entries``, ``protected_types``, ``timeout``,
        ``retries``) come from a ``[cf_cass]`` table (unknown keys there are logged),
        overridden by ``options`` (unknown ones refused). ``agent_id`` is not used:
        one memory store serves every agent of the project.
        """
        edge = config.cloudflare
        if not edge.worker_url:
            raise ValidationError(
                "cloudflare.worker_url",
                "is not set (JETPACK_WORKER_URL or [cloudflare] worker_url)",
            )
        if edge.api_token is None or not edge.api_token.get_secret_value():
            raise ValidationError("cloudflare.api_token", "is not set (JETPACK_API_TOKEN)")
        table = config_options(config, "cf_cass", _OPTIONS)
        return cls(edge.worker_url, edge.api_token.get_secret_value(), **{**table, **options})

    def __repr__(self) -> str:
        name = self._embedder.name if self._embedder else None
        return f"CloudflareMemoryStore({self._client.url!r}, embedder={name!r})"

    @property
    def embedder(self) -> Embedder | None:
        """The configured embedder, if any."""
        return self._embedder

    async def open(self) -> None:
        """Connect and check the Worker's API version and memory module."""
        await self._client.open()

    async def aclose(self) -> None:
        """Close the connection pool (and the embedder this store made)."""
        try:
            await self._client.aclose()
        finally:
            if self._owns_embedder and self._embedder is not None:
                await self._embedder.aclose()

    def _keeping(self) -> dict[str, Any]:
        return {
            "max_entries": self.max_entries,
            "protected_types": sorted(t.value for t in self.protected_types),
        }

    # -- store ----------------------------------------------------------------

    async def _bodies(
        self, entries: Sequence[MemoryInput | Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Validated bodies; texts without a vector embedded (a failing embedder is logged)."""
        items = [parse(MemoryInput, entry) for entry in entries]
        vectors: list[list[float] | None] = [item.embedding for item in items]
        models: list[str | None] = [CALLER_MODEL if v is not None else None for v in vectors]
        todo = [i for i, v in enumerate(vectors) if v is None]
        if self._embedder is not None and todo:
            embedder = self._embedder
            try:
                made = await embedder.embed([items[i].content for i in todo])
                if len(made) != len(todo):
                    raise ValidationError("embedding", "the embedder returned a wrong count")
                checked = [_check_vector(v, embedder.dimensions) for v in made]
            except Exception as error:  # the store must not fail because a model did
                logger.warning(
                    "embedding %d memories with %s failed (%s: %s); stored without vectors",
                    len(todo),
                    embedder.name,
                    type(error).__name__,
                    error,
                )
            else:
                for i, vector in zip(todo, checked, strict=True):
                    vectors[i] = vector
                    models[i] = embedder.name
        return [
            _wire.write_body(item, vector, model)
            for item, vector, model in zip(items, vectors, models, strict=True)
        ]

    async def store(self, entry: MemoryInput | Mapping[str, Any]) -> str:
        """Store one memory (embedding it when an embedder is configured); return its id."""
        (body,) = await self._bodies([entry])
        keeping = self._keeping()
        params = {
            "max_entries": keeping["max_entries"],
            "protected_types": ",".join(keeping["protected_types"]),
        }
        answer = await self._client.json("POST", _wire.MEMORY, json=body, params=params)
        return str(answer["id"])

    async def store_many(self, entries: Sequence[MemoryInput | Mapping[str, Any]]) -> list[str]:
        """Store many in one transaction: all or none (bodies over 1 MiB go in parts).

        Overflowing ``max_entries`` evicts down to 95 % of it in that
        transaction: older entries before this call's, never its last entry.
        """
        if isinstance(entries, str | bytes | Mapping) or not isinstance(entries, Sequence):
            raise ValidationError("entries", "expected a list of memories")
        bodies = await self._bodies(entries)
        if not bodies:
            return []
        answer = await self._client.json(
            "POST", _wire.BATCH, json={"memories": bodies, **self._keeping()}
        )
        return [str(i) for i in answer["ids"]]

    # -- single entries -------------------------------------------------------

    async def retrieve(self, memory_id: str) -> MemoryEntry | None:
        """Return the entry after atomically bumping access_count and last_accessed."""
        check_text(memory_id, "memory_id")
        if not _known(memory_id):
            return None
        response = await self._client.request("GET", _wire.memory_path(memory_id), allow=(404,))
        return None if response.status_code == 404 else _wire.entry_of(response)

    async def delete(self, memory_id: str) -> bool:
        """Delete; False if it did not exist."""
        check_text(memory_id, "memory_id")
        if not _known(memory_id):
            return False
        response = await self._client.request("DELETE", _wire.memory_path(memory_id), allow=(404,))
        return response.status_code != 404

    async def update_importance(self, memory_id: str, importance: float) -> None:
        """Set importance (0..1). NotFoundError for an unknown id."""
        value = _check_unit(importance, "importance")
        check_text(memory_id, "memory_id")
        if not _known(memory_id):
            raise NotFoundError("memory", memory_id)
        await self._client.request(
            "PATCH",
            _wire.memory_path(memory_id),
            json={"importance": value},
            not_found=("memory", memory_id),
        )

    # -- listings -------------------------------------------------------------

    async def get_by_type(self, type: MemoryType, limit: int = 50) -> list[MemoryEntry]:
        """Entries of one type, most important first (then most recently used)."""
        kind = _parse_type(type)
        params = {"limit": _check_limit(limit)}
        response = await self._client.request("GET", _wire.type_path(kind.value), params=params)
        return _wire.entries_of(response)

    async def get_recent_memories(self, limit: int = 50) -> list[MemoryEntry]:
        """Newest first."""
        params = {"limit": _check_limit(limit)}
        return _wire.entries_of(await self._client.request("GET", _wire.RECENT, params=params))

    async def list_memories(
        self, *, limit: int = 50, cursor: str | None = None, type: MemoryType | None = None
    ) -> Page[MemoryEntry]:
        """Keyset pages, newest first (by insertion), stable under writes.

        Accesses never reorder pages; a cursor this store did not issue, or
        issued for another ``type``, is ValidationError('cursor').
        """
        params: dict[str, str | int] = {"limit": _check_limit(limit)}
        if cursor is not None:
            if not isinstance(cursor, str):
                raise ValidationError("cursor", "is not a cursor issued by list_memories")
            params["cursor"] = cursor
        if type is not None:
            params["type"] = _parse_type(type).value
        return _wire.page_of(await self._client.request("GET", _wire.MEMORY, params=params))

    async def get_stats(self) -> MemoryStats:
        """Counts, mean importance, accesses, embedding coverage, the vector space in use."""
        stats = _wire.stats_of(await self._client.request("GET", _wire.STATS))
        if self._embedder is not None:
            stats.embedding_model = self._embedder.name
        return stats

    async def index_state(self) -> _wire.IndexState:
        """Where the project's vectors are searched (built-in or Vectorize) and Vectorize's lag."""
        return _wire.IndexState.model_validate_json(
            (await self._client.request("GET", _wire.INDEX)).content
        )

    # -- searches -------------------------------------------------------------

    async def search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Full-text BM25 search. Any text is safe; exact identifiers are found.

        Each whitespace token is searched as a quoted phrase of its word parts
        (``bd-q3fy`` → ``"bd q3fy"``), OR-ed, ranked by BM25 over this
        project's memories only; ``score`` is the negated BM25 rank.
        """
        check_text(query, "query")
        body = {"query": query, "limit": _check_limit(limit)}
        response = await self._client.request("POST", _wire.SEARCH, json=body, read=True)
        return _wire.entries_of(response)

    async def semantic_search(
        self, embedding: Sequence[float], limit: int = 10
    ) -> list[MemoryEntry]:
        """Exact cosine top-k over the project's vectors, best first; ``score`` is the cosine.

        A vector of another size than the project's, a zero vector or values
        float32 cannot hold are ValidationError('embedding').
        """
        vector = _check_vector(embedding)
        body = {
            "embedding": _wire.encode_vector(vector),
            "embedding_model": CALLER_MODEL,
            "limit": _check_limit(limit),
        }
        response = await self._client.request("POST", _wire.SEMANTIC, json=body, read=True)
        return _wire.entries_of(response)

    async def _embed_query(self, query: str) -> list[float] | None:
        if self._embedder is None or not query.strip():
            return None
        (vector,) = await self._embedder.embed([query])
        return _check_vector(vector, self._embedder.dimensions)

    def _query_body(self, query: str, vector: list[float] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query}
        if vector is not None and self._embedder is not None:
            body["embedding"] = _wire.encode_vector(vector)
            body["embedding_model"] = self._embedder.name
        return body

    async def semantic_search_by_query(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Embed ``query`` and search by vector.

        Without an embedder the Worker embeds it with Workers AI where bound;
        without either, or while no memory has a vector yet, this is
        :meth:`search` (BM25).
        """
        check_text(query, "query")
        limit = _check_limit(limit)
        vector = await self._embed_query(query)
        body = {**self._query_body(query, vector), "limit": limit}
        response = await self._client.request("POST", _wire.SEMANTIC, json=body, read=True)
        return _wire.entries_of(response)

    async def hybrid_search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """BM25 and vector results fused by :func:`jetpack.shared.rules.fuse_hybrid`.

        The Worker answers both ranked lists (each ``max(5 × limit, 50)`` deep)
        in one request; they are fused here, as jetpack-cass fuses its own, and
        ``score`` is the fused score. Without vectors (no embedder and no
        Workers AI, none stored yet, or embedding the query failed: logged) it
        is :meth:`search`.
        """
        check_text(query, "query")
        limit = _check_limit(limit)
        vector: list[float] | None = None
        try:
            vector = await self._embed_query(query)
        except Exception as error:  # fail open to BM25
            logger.warning("hybrid_search: embedding the query failed (%s); BM25 only", error)
        body = {**self._query_body(query, vector), "depth": max(limit * 5, 50)}
        response = await self._client.request("POST", _wire.HYBRID, json=body, read=True)
        lists = _wire.Hybrid.model_validate_json(response.content)
        by_id = {entry.id: entry for entry in lists.memories}
        text = [(hit.id, hit.score) for hit in lists.text]
        if not lists.semantic:  # no vectors to rank by
            ranked = text[:limit]
        else:
            ranked = fuse_hybrid(text, [(hit.id, hit.score) for hit in lists.semantic])[:limit]
        return [
            by_id[key].model_copy(update={"score": score}) for key, score in ranked if key in by_id
        ]

    # -- maintenance ----------------------------------------------------------

    async def compact(self, threshold: float) -> int:
        """Delete entries with importance below ``threshold`` except protected types."""
        value = _check_unit(threshold, "threshold")
        body = {"threshold": value, "protected_types": self._keeping()["protected_types"]}
        answer = await self._client.json("POST", _wire.COMPACT, json=body)
        return int(answer["removed"])

    async def adaptive_compact(self) -> int:
        """Trim to ``max_entries`` by lowest retention score; never the newest entry.

        The score is :func:`jetpack.shared.rules.retention_score` (0.6 ×
        importance + 0.25 × recency of the last access, half-life 14 days, +
        0.15 × use); unprotected entries go first, lowest score first (older
        first on ties). Returns how many were deleted.
        """
        answer = await self._client.json("POST", _wire.COMPACT, json=self._keeping())
        return int(answer["removed"])

    async def backfill_embeddings(self, batch_size: int = 32) -> int:
        """Embed up to ``batch_size`` entries lacking vectors, oldest first; return how many.

        Resumable: each call embeds one batch and stores it; call until it
        returns 0. With an embedder the texts are embedded here; without one
        the Worker embeds them with Workers AI where it is bound (else 0). An
        embedder failure raises and leaves the entries for the next call.
        """
        size = _check_limit(batch_size, "batch_size")
        embedder = self._embedder
        if embedder is None:
            answer = await self._client.json("POST", _wire.BACKFILL, json={"batch_size": size})
            return int(answer["processed"])
        waiting = _wire.waiting_of(
            await self._client.request("GET", _wire.WAITING, params={"limit": size})
        )
        if not waiting:
            return 0
        made = await embedder.embed([content for _, content in waiting])
        if len(made) != len(waiting):
            raise ValidationError("embedding", "the embedder returned a wrong number of vectors")
        vectors = [_check_vector(v, embedder.dimensions) for v in made]
        body = {
            "vectors": [
                {"id": memory_id, "embedding": _wire.encode_vector(vector)}
                for (memory_id, _), vector in zip(waiting, vectors, strict=True)
            ],
            "embedding_model": embedder.name,
        }
        await self._client.request("POST", _wire.BACKFILL, json=body)
        return len(waiting)
