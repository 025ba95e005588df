"""CASSAdapter: the local MemoryStore on one SQLite file.

Each public method checks its arguments (:mod:`~jetpack.cass._checks`) on the
event loop, embeds texts if it must (never inside a transaction), then runs one
job: a read (:mod:`~jetpack.cass._reads`) in one snapshot on a reader thread, or
a write (:mod:`~jetpack.cass._writes`) as one ``BEGIN IMMEDIATE`` transaction on
the writer thread (:class:`jetpack.shared.sqlite.Database`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from jetpack.cass import _reads, _writes
from jetpack.cass._checks import (
    check_id,
    check_limit,
    check_query,
    check_unit,
    parse_input,
    parse_type,
)
from jetpack.cass._index import VectorIndex
from jetpack.cass._query import decode_cursor, encode_cursor
from jetpack.cass._schema import ensure_schema, ensure_trigram, has_trigram
from jetpack.cass._vectors import FloatMatrix, check_vector
from jetpack.shared import (
    CALLER_MODEL,
    AsyncStoreMixin,
    Embedder,
    MemoryEntry,
    MemoryInput,
    MemoryStats,
    MemoryType,
    Page,
    to_ms,
    utcnow,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import BackendNotInstalledError, ValidationError
from jetpack.shared.registry import config_options
from jetpack.shared.rules import check_options, fuse_hybrid, option_names
from jetpack.shared.sqlite import Database

__all__ = ["CASSAdapter"]

logger = logging.getLogger(__name__)

_CACHE_KIB = 65_536
"""Page cache per connection (64 MiB): search and vector loads read big parts of the file."""


def _resolve_embedder(spec: Embedder | str | None) -> tuple[Embedder | None, bool]:
    """(embedder, owned): build one from a spec string; an instance is the caller's."""
    if spec is None or not isinstance(spec, str):
        if spec is not None and not isinstance(spec, Embedder):
            raise ValidationError("embedder", "expected an Embedder, a spec string or None")
        return spec, False
    from jetpack.shared.embedders import get_embedder

    try:
        return get_embedder(spec), True
    except BackendNotInstalledError as error:
        if spec.strip().lower() != "default":
            raise
        logger.warning("no local embedding model installed; text search only (%s)", error)
        return None, False


def _prepare(trigram: bool) -> Callable[[sqlite3.Connection], bool]:
    """The file's set-up: schema (and the trigram index when asked); whether it has trigram."""

    def setup(conn: sqlite3.Connection) -> bool:
        ensure_schema(conn)
        if trigram:
            ensure_trigram(conn)
        return has_trigram(conn)

    return setup


def _candidates(limit: int) -> int:
    """How deep each ranking goes before hybrid fusion."""
    return max(limit * 5, 50)


class CASSAdapter(AsyncStoreMixin):
    """Local memory store: SQLite (FTS5 BM25 + float32 vectors), exact cosine, fused hybrid.

    ::

        async with CASSAdapter(".cass/memories.db") as memory:
            await memory.store({"type": "agent_learning", "content": "Use WAL for SQLite"})
            hits = await memory.hybrid_search("sqlite journal mode")

    Args:
        db_path: the SQLite file (created with its folder).
        embedder: an Embedder, a spec for
            :func:`jetpack.shared.embedders.get_embedder` (``"default"`` = local
            all-MiniLM-L6-v2; falls back to text search, with a warning, when the
            model is not installed), or None (vectors only when supplied).
        max_entries: the store holds at most this many; a store that overflows it
            evicts the lowest retention scores down to 95 % of it.
        protected_types: kept by :meth:`compact`, and evicted last by
            :meth:`adaptive_compact`.
        substring_search: build (once; then kept by every writer) a trigram
            index so :meth:`search` also finds substrings (``SessionMan``, CJK
            text) when word matches run short. Writes get about 3× slower.
        busy_timeout_ms: how long to wait for another process's write lock.
        pool_size: reader threads (and connections).

    Any other keyword is a ValidationError naming it.
    """

    def __init__(
        self,
        db_path: str | Path = ".cass/memories.db",
        embedder: Embedder | str | None = "default",
        max_entries: int = 10_000,
        *,
        protected_types: Iterable[MemoryType | str] = (MemoryType.CODEBASE_KNOWLEDGE,),
        substring_search: bool = False,
        busy_timeout_ms: int = 10_000,
        pool_size: int = 4,
        **unknown: object,
    ) -> None:
        check_options(unknown, _OPTIONS)
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValidationError("max_entries", "must be an integer >= 1")
        self.db_path = Path(db_path)
        self.max_entries = max_entries
        self.protected_types = frozenset(parse_type(t, "protected_types") for t in protected_types)
        self._protected = frozenset(t.value for t in self.protected_types)
        self._db: Database[bool] = Database(
            self.db_path,
            store="memory database",
            setup=_prepare(bool(substring_search)),
            busy_timeout_ms=busy_timeout_ms,
            readers=pool_size,
            cache_kib=_CACHE_KIB,
        )
        self._trigram = False
        self._index = VectorIndex()
        self._embedder, self._owns_embedder = _resolve_embedder(embedder)

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str, **options: Any) -> Self:
        """Build the project's store: ``config.local.memory_db``, options from ``[cass]``.

        ``[cass]`` may set ``embedder``, ``max_entries``, ``protected_types``,
        ``substring_search``, ``busy_timeout_ms`` and ``pool_size``; ``options``
        override it (an unknown one is a ValidationError; unknown keys of the
        table are only logged). ``agent_id`` is unused: one memory store serves
        every agent.
        """
        table = config_options(config, "cass", _OPTIONS - {"db_path"})
        return cls(config.path(config.local.memory_db), **{**table, **options})

    def __repr__(self) -> str:
        name = self._embedder.name if self._embedder else None
        return f"CASSAdapter({str(self.db_path)!r}, embedder={name!r})"

    @property
    def embedder(self) -> Embedder | None:
        """The configured embedder, if any."""
        return self._embedder

    @property
    def matrix_loads(self) -> int:
        """How many times every vector was read into the matrix (for tests and benchmarks)."""
        return self._index.full_loads

    # -- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        """Create or upgrade the database and adopt the embedder (``async with`` does it)."""
        self._trigram = await self._db.open()
        try:
            if self._embedder is not None:
                await self._adopt_embedder(self._embedder)
        except BaseException:
            await self._db.close()
            raise

    async def aclose(self) -> None:
        """Close the database connections (``async with`` does it)."""
        try:
            await self._db.close()
        finally:
            self._index.close()
            if self._owns_embedder and self._embedder is not None:
                await self._embedder.aclose()

    async def _adopt_embedder(self, embedder: Embedder) -> None:
        """Make the embedder's vector space the store's one space (see ``_writes.adopt_space``)."""
        space = await self._db.read(_reads.meta, ("dimensions", "embedding_model"))
        if (space.get("dimensions"), space.get("embedding_model")) != (
            embedder.dimensions,
            embedder.name,
        ):
            await self._db.write(
                _writes.adopt_space, embedder.name, embedder.dimensions, self.db_path
            )

    # -- store ----------------------------------------------------------------

    async def store(self, entry: MemoryInput | Mapping[str, Any]) -> str:
        """Store one memory (embedding it when an embedder is configured); return its id."""
        return (await self.store_many([entry]))[0]

    async def store_many(self, entries: Sequence[MemoryInput | Mapping[str, Any]]) -> list[str]:
        """Store many in one transaction: all or none.

        Texts are embedded before the transaction; if the embedder fails the
        entries are stored without vectors (logged) and :meth:`backfill_embeddings`
        catches up later. Overflowing ``max_entries`` evicts down to 95 % of it
        (see :meth:`adaptive_compact` for the order): older entries before this
        call's, and never the last entry of this call.
        """
        if isinstance(entries, str | bytes | Mapping) or not isinstance(entries, Sequence):
            raise ValidationError("entries", "expected a list of memories")
        parsed = [parse_input(e) for e in entries]
        if not parsed:
            return []
        inputs = [item for item, _ in parsed]
        vectors: list[FloatMatrix | None] = [vector for _, vector in parsed]
        models: list[str | None] = [CALLER_MODEL if v is not None else None for v in vectors]
        await self._embed_missing(inputs, vectors, models)
        return await self._db.write(
            _writes.store_entries,
            inputs,
            vectors,
            models,
            to_ms(utcnow()),
            trigram=self._trigram,
            max_entries=self.max_entries,
            protected=self._protected,
        )

    async def _embed_missing(
        self,
        inputs: Sequence[MemoryInput],
        vectors: list[FloatMatrix | None],
        models: list[str | None],
    ) -> None:
        if self._embedder is None:
            return
        todo = [i for i, v in enumerate(vectors) if v is None]
        if not todo:
            return
        try:
            made = await self._embedder.embed([inputs[i].content for i in todo])
            checked = [check_vector(v, self._embedder.dimensions, "embedding") for v in made]
            if len(checked) != len(todo):
                raise ValidationError("embedding", "the embedder returned a wrong count")
        except Exception as error:  # the store must not fail because a model did
            logger.warning(
                "embedding %d memories with %s failed (%s: %s); stored without vectors",
                len(todo),
                self._embedder.name,
                type(error).__name__,
                error,
            )
            return
        for i, vector in zip(todo, checked, strict=True):
            vectors[i] = vector
            models[i] = self._embedder.name

    # -- single entries -------------------------------------------------------

    async def retrieve(self, memory_id: str) -> MemoryEntry | None:
        """Return the entry after atomically bumping access_count and last_accessed."""
        check_id(memory_id)
        return await self._db.write(_writes.retrieve, memory_id, to_ms(utcnow()))

    async def delete(self, memory_id: str) -> bool:
        """Delete; False if it did not exist."""
        check_id(memory_id)
        return await self._db.write(_writes.delete, memory_id)

    async def update_importance(self, memory_id: str, importance: float) -> None:
        """Set importance (0..1). NotFoundError for an unknown id."""
        value = check_unit(importance, "importance")
        check_id(memory_id)
        await self._db.write(_writes.update_importance, memory_id, value)

    # -- listings -------------------------------------------------------------

    async def get_by_type(self, type: MemoryType, limit: int = 50) -> list[MemoryEntry]:
        """Entries of one type, most important first (then most recently used)."""
        kind = parse_type(type)
        order = "m.importance DESC, m.last_accessed DESC, m.seq DESC"
        params = (kind.value, check_limit(limit))
        return await self._db.read(_reads.entries, "WHERE m.type = ?", order, params)

    async def get_recent_memories(self, limit: int = 50) -> list[MemoryEntry]:
        """Newest first."""
        order = "m.created_at DESC, m.seq DESC"
        return await self._db.read(_reads.entries, "", order, (check_limit(limit),))

    async def list_memories(
        self, *, limit: int = 50, cursor: str | None = None, type: MemoryType | None = None
    ) -> Page[MemoryEntry]:
        """Keyset pages, newest first (by insertion ``seq``), stable under writes.

        Accesses never reorder pages; entries stored after the first page are
        not in later ones; deleted entries simply drop out. A cursor this store
        did not issue, or issued for another ``type``, is ValidationError('cursor').
        """
        check_limit(limit)
        kind = None if type is None else parse_type(type).value
        before = None if cursor is None else decode_cursor(cursor, kind)
        items, resume = await self._db.read(_reads.page, before, kind, limit)
        next_cursor = None if resume is None else encode_cursor(resume, kind)
        return Page[MemoryEntry](items=items, next_cursor=next_cursor, has_more=resume is not None)

    async def get_stats(self) -> MemoryStats:
        """Counts, mean importance, accesses, embedding coverage."""
        model = self._embedder.name if self._embedder else None
        return await self._db.read(_reads.stats, model)

    # -- search ---------------------------------------------------------------

    async def search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Full-text BM25 search. Any text is safe; exact identifiers are found.

        Each whitespace token is searched as a quoted phrase of its word parts
        (``bd-q3fy`` → ``"bd q3fy"``), OR-ed, ranked by BM25 (stemmed, Porter).
        With ``substring_search=True``, when that finds fewer than ``limit``
        entries, substring matches from the trigram index fill the rest
        (``SessionMan``, ``日本語``). ``score`` is the negated BM25 rank (higher
        is better).
        """
        check_query(query)
        check_limit(limit)
        return await self._db.read(_reads.text, query, limit, self._trigram)

    async def semantic_search(
        self, embedding: Sequence[float], limit: int = 10
    ) -> list[MemoryEntry]:
        """Exact cosine top-k over every stored vector, best first; ``score`` is the cosine.

        A vector of another size than the store's, a zero vector or non-finite
        values are ValidationError('embedding').
        """
        check_limit(limit)
        return await self._db.read(_reads.semantic, self._index, embedding, limit)

    async def _embed_query(self, query: str) -> list[float]:
        assert self._embedder is not None
        (vector,) = await self._embedder.embed([query])
        return vector

    async def semantic_search_by_query(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Embed ``query`` and search by vector.

        Without an embedder, or while no entry has a vector yet, this is
        :meth:`search` (BM25).
        """
        check_query(query)
        check_limit(limit)
        if self._embedder is None or not query.strip():
            return await self.search(query, limit)
        if not await self._db.read(_reads.has_vectors):
            return await self._db.read(_reads.text, query, limit, self._trigram)
        vector = await self._embed_query(query)
        return await self.semantic_search(vector, limit)

    async def hybrid_search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """BM25 and vector results fused by :func:`jetpack.shared.rules.fuse_hybrid`.

        ``score`` is the fused score: 0.8 × the min-max normalised cosine + 0.2 ×
        BM25 ÷ the best BM25, plus 1 for a decisive lexical match (the best BM25
        hit at least twice the runner-up, e.g. an exact identifier). Each list goes
        ``max(5 × limit, 50)`` deep; the two run concurrently.
        Without an embedder, with no vectors stored yet, or if embedding the
        query fails (logged), it is :meth:`search`.
        """
        check_query(query)
        check_limit(limit)
        depth = _candidates(limit)
        vector: list[float] | None = None
        if self._embedder is not None and query.strip():
            try:
                vector = await self._embed_query(query)
            except Exception as error:  # fail open to BM25
                logger.warning("hybrid_search: embedding the query failed (%s); BM25 only", error)
        if vector is None:
            return await self._db.read(_reads.text, query, limit, self._trigram)
        text, semantic = await asyncio.gather(
            self._db.read(_reads.text_rank, query, depth, self._trigram),
            self._db.read(self._index.top_k, vector, depth),
        )
        if not semantic:  # no vectors stored yet
            return await self._db.read(_reads.entries_by_seq, text[:limit])
        fused = fuse_hybrid(text, semantic)
        return await self._db.read(_reads.entries_by_seq, fused[:limit])

    # -- maintenance ----------------------------------------------------------

    async def compact(self, threshold: float) -> int:
        """Delete entries with importance below ``threshold`` except protected types."""
        value = check_unit(threshold, "threshold")
        return await self._db.write(_writes.compact, value, self._protected)

    async def adaptive_compact(self) -> int:
        """Trim to ``max_entries`` by lowest retention score; never the newest entry.

        The score is :func:`jetpack.shared.rules.retention_score`: 0.6 × importance
        + 0.25 × recency of the last access (half-life 14 days) + 0.15 × use
        (log of the access count, full at 20). Unprotected entries go first,
        lowest score first (older first on ties); protected types only when they
        alone overflow the cap. Returns how many were deleted.
        """
        return await self._db.write(_writes.adaptive_compact, self.max_entries, self._protected)

    async def backfill_embeddings(self, batch_size: int = 32) -> int:
        """Embed up to ``batch_size`` entries lacking vectors, oldest first; return how many.

        Resumable: each call embeds one batch and commits it; call until it
        returns 0. Without an embedder it returns 0. An embedder failure raises
        and leaves the rows for the next call.
        """
        check_limit(batch_size, "batch_size")
        embedder = self._embedder
        if embedder is None:
            return 0
        todo = await self._db.read(_reads.missing_embeddings, batch_size)
        if not todo:
            return 0
        made = await embedder.embed([content for _, content in todo])
        if len(made) != len(todo):
            raise ValidationError("embedding", "the embedder returned a wrong number of vectors")
        vectors = [check_vector(v, embedder.dimensions, "embedding") for v in made]
        rows = [(seq, embedder.name, v) for (seq, _), v in zip(todo, vectors, strict=True)]
        await self._db.write(_writes.store_vectors, rows)
        return len(todo)


_OPTIONS = option_names(CASSAdapter)
"""The constructor's keywords: anything else is refused (``rules.check_options``)."""
