"""CASSAdapter: the local MemoryStore on one SQLite file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection

from jetpack.cass._checks import check_id, check_limit, check_unit, parse_type
from jetpack.cass._db import Database
from jetpack.cass._index import VectorIndex
from jetpack.cass._maintenance import CALLER_MODEL, MaintenanceMixin
from jetpack.cass._query import decode_cursor, encode_cursor
from jetpack.cass._search import SearchMixin
from jetpack.cass._sql import (
    ENTRY_COLUMNS,
    FROM_ENTRIES,
    INSERT_MEMORY,
    fetch_all,
    read_meta,
    row_to_entry,
    scalar,
    write_vectors,
)
from jetpack.cass._vectors import FloatMatrix, check_vector
from jetpack.shared import (
    AsyncStoreMixin,
    Embedder,
    MemoryEntry,
    MemoryInput,
    MemoryStats,
    MemoryType,
    Page,
    parse,
    to_ms,
    utcnow,
)
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import (
    BackendNotInstalledError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from jetpack.shared.rules import new_memory_id

__all__ = ["CASSAdapter"]

logger = logging.getLogger(__name__)

_IN_CHUNK = 500


def _resolve_embedder(spec: Embedder | str | None) -> tuple[Embedder | None, bool]:
    """(embedder, owned): build one from a spec string; an instance is the caller's."""
    if spec is None or not isinstance(spec, str):
        if spec is not None and not isinstance(spec, Embedder):
            raise ValidationError("embedder", "expected an Embedder, a spec string or None")
        return spec, False
    from jetpack.cass.embedders import get_embedder

    try:
        return get_embedder(spec), True
    except BackendNotInstalledError as error:
        if spec.strip().lower() != "default":
            raise
        logger.warning("no local embedding model installed; text search only (%s)", error)
        return None, False


def _parse_input(entry: object) -> tuple[MemoryInput, FloatMatrix | None]:
    """Validate one input; its vector is checked with numpy, not element by element.

    Same rules as ``MemoryInput`` (finite, non-zero, at most 4096 values), same
    ``ValidationError('embedding')``, about 50× faster for a 384-dim vector.
    """
    if isinstance(entry, MemoryInput):
        data: Any = entry.model_dump(exclude_unset=True)
    elif isinstance(entry, Mapping):
        data = dict(entry)
    else:
        return parse(MemoryInput, entry), None  # type: ignore[arg-type]  # refused by parse
    raw = data.pop("embedding", None)
    item = parse(MemoryInput, data)
    return item, None if raw is None else check_vector(raw, None, "embedding")


class CASSAdapter(SearchMixin, MaintenanceMixin, AsyncStoreMixin):
    """Local memory store: SQLite (FTS5 BM25 + float32 vectors), exact cosine, fused hybrid.

    ::

        async with CASSAdapter(".cass/memories.db") as memory:
            await memory.store({"type": "agent_learning", "content": "Use WAL for SQLite"})
            hits = await memory.hybrid_search("sqlite journal mode")

    Args:
        db_path: the SQLite file (created with its folder).
        embedder: an Embedder, a spec for
            :func:`jetpack.cass.embedders.get_embedder` (``"default"`` = local
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
        pool_size: reader connections.
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
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValidationError("max_entries", "must be an integer >= 1")
        self.db_path = Path(db_path)
        self.max_entries = max_entries
        self.protected_types = frozenset(parse_type(t, "protected_types") for t in protected_types)
        self._db = Database(
            self.db_path,
            busy_timeout_ms=busy_timeout_ms,
            pool_size=pool_size,
            trigram=substring_search,
        )
        self._embedder, self._owns_embedder = _resolve_embedder(embedder)
        SearchMixin.__init__(self, VectorIndex(self.db_path, busy_timeout_ms=busy_timeout_ms))

    @classmethod
    def from_config(cls, config: JetpackConfig, *, agent_id: str) -> Self:
        """Build the project's store: ``config.local.memory_db``, options from ``[cass]``.

        ``[cass]`` may set ``embedder``, ``max_entries``, ``protected_types``,
        ``substring_search``, ``busy_timeout_ms`` and ``pool_size``. ``agent_id``
        is unused: one memory store serves every agent.
        """
        options = config.section("cass")
        known = {
            "embedder",
            "max_entries",
            "protected_types",
            "substring_search",
            "busy_timeout_ms",
            "pool_size",
        }
        return cls(
            config.path(config.local.memory_db),
            **{k: v for k, v in options.items() if k in known},
        )

    def __repr__(self) -> str:
        name = self._embedder.name if self._embedder else None
        return f"CASSAdapter({str(self.db_path)!r}, embedder={name!r})"

    @property
    def embedder(self) -> Embedder | None:
        """The configured embedder, if any."""
        return self._embedder

    # -- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        """Create or upgrade the database and adopt the embedder (``async with`` does it)."""
        await self._db.open()
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
        parsed = [_parse_input(e) for e in entries]
        if not parsed:
            return []
        inputs = [item for item, _ in parsed]
        vectors: list[FloatMatrix | None] = [vector for _, vector in parsed]
        models: list[str | None] = [CALLER_MODEL if v is not None else None for v in vectors]
        await self._embed_missing(inputs, vectors, models)
        now = to_ms(utcnow())
        async with self._db.write() as conn:
            meta = await read_meta(conn, ("dimensions",))
            dims = meta.get("dimensions")
            for vector in vectors:
                if vector is not None:
                    dims = dims or vector.size
                    if vector.size != dims:
                        raise ValidationError(
                            "embedding", f"has {vector.size} dimensions; this store uses {dims}"
                        )
            ids = await self._assign_ids(conn, inputs)
            seq0 = int(await scalar(conn, "SELECT coalesce(max(seq), 0) FROM memories")) + 1
            rows = [
                (
                    memory_id,
                    item.type.value,
                    item.content,
                    item.importance,
                    json.dumps(item.metadata, separators=(",", ":")),
                    int(vectors[i] is not None),
                    now,
                    now,
                    seq0 + i,
                )
                for i, (memory_id, item) in enumerate(zip(ids, inputs, strict=True))
            ]
            await conn.exec_driver_sql(INSERT_MEMORY, rows)
            await self._index_new(conn, seq0, len(rows))
            if any(v is not None for v in vectors):
                await write_vectors(
                    conn,
                    [
                        (seq0 + i, models[i] or CALLER_MODEL, v)
                        for i, v in enumerate(vectors)
                        if v is not None
                    ],
                    mark=False,
                )
                if meta.get("dimensions") is None:
                    await conn.exec_driver_sql(
                        "UPDATE cass_meta SET value = ? WHERE key = 'dimensions'", (dims,)
                    )
            count = await read_meta(conn, ("memory_count",))
            if int(count["memory_count"]) > self.max_entries:
                low_water = self.max_entries - self.max_entries // 20
                batch = range(seq0, seq0 + len(rows))
                await self._trim(conn, low_water, newest=batch[-1], batch=batch)
        return ids

    async def _index_new(self, conn: AsyncConnection, seq0: int, count: int) -> None:
        """Index rows ``seq >= seq0`` (just inserted) in FTS and count them: one statement each."""
        await conn.exec_driver_sql(
            "INSERT INTO memories_fts(rowid, content) SELECT seq, content FROM memories "
            "WHERE seq >= ?",
            (seq0,),
        )
        if self._db.has_trigram:
            await conn.exec_driver_sql(
                "INSERT INTO memories_tri(rowid, content) SELECT seq, content FROM memories "
                "WHERE seq >= ?",
                (seq0,),
            )
        await conn.exec_driver_sql(
            "UPDATE cass_meta SET value = value + ? WHERE key = 'memory_count'", (count,)
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

    async def _assign_ids(self, conn: AsyncConnection, inputs: Sequence[MemoryInput]) -> list[str]:
        ids = [item.id or new_memory_id() for item in inputs]
        explicit = {item.id for item in inputs if item.id}
        while True:
            seen: set[str] = set()
            for memory_id in ids:
                if memory_id in seen and memory_id in explicit:
                    raise ConflictError(f"memory {memory_id!r} appears twice in one batch")
                seen.add(memory_id)
            taken: set[str] = set()
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = tuple(ids[start : start + _IN_CHUNK])
                found = await fetch_all(
                    conn,
                    f"SELECT id FROM memories WHERE id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                taken.update(str(r[0]) for r in found)
            if taken & explicit:
                raise ConflictError(f"memory {sorted(taken & explicit)[0]!r} already exists")
            clash = len(seen) != len(ids) or bool(taken)
            if not clash:
                return ids
            used: set[str] = set()
            for i, memory_id in enumerate(ids):  # a generated id collided: draw again
                if (memory_id in taken or memory_id in used) and memory_id not in explicit:
                    ids[i] = new_memory_id()
                used.add(ids[i])

    # -- single entries -------------------------------------------------------

    async def retrieve(self, memory_id: str) -> MemoryEntry | None:
        """Return the entry after atomically bumping access_count and last_accessed."""
        check_id(memory_id)
        async with self._db.write() as conn:
            seq = await scalar(
                conn,
                "UPDATE memories SET access_count = coalesce(access_count, 0) + 1, "
                "last_accessed = ?, version = version + 1 WHERE id = ? RETURNING seq",
                (to_ms(utcnow()), memory_id),
            )
            if seq is None:
                return None
            rows = await fetch_all(
                conn, f"SELECT {ENTRY_COLUMNS} FROM {FROM_ENTRIES} WHERE m.seq = ?", (seq,)
            )
        return row_to_entry(rows[0])

    async def delete(self, memory_id: str) -> bool:
        """Delete; False if it did not exist."""
        check_id(memory_id)
        async with self._db.write() as conn:
            result = await conn.exec_driver_sql("DELETE FROM memories WHERE id = ?", (memory_id,))
            return bool(result.rowcount)

    async def update_importance(self, memory_id: str, importance: float) -> None:
        """Set importance (0..1). NotFoundError for an unknown id."""
        value = check_unit(importance, "importance")
        check_id(memory_id)
        async with self._db.write() as conn:
            result = await conn.exec_driver_sql(
                "UPDATE memories SET importance = ?, version = version + 1 WHERE id = ?",
                (value, memory_id),
            )
            if not result.rowcount:
                raise NotFoundError("memory", memory_id)

    # -- listings -------------------------------------------------------------

    async def _select(self, where: str, order: str, params: tuple[Any, ...]) -> list[MemoryEntry]:
        async with self._db.read() as conn:
            rows = await fetch_all(
                conn,
                f"SELECT {ENTRY_COLUMNS} FROM {FROM_ENTRIES} {where} ORDER BY {order} LIMIT ?",
                params,
            )
        return [row_to_entry(r) for r in rows]

    async def get_by_type(self, type: MemoryType, limit: int = 50) -> list[MemoryEntry]:
        """Entries of one type, most important first (then most recently used)."""
        kind = parse_type(type)
        return await self._select(
            "WHERE m.type = ?",
            "m.importance DESC, m.last_accessed DESC, m.seq DESC",
            (kind.value, check_limit(limit)),
        )

    async def get_recent_memories(self, limit: int = 50) -> list[MemoryEntry]:
        """Newest first."""
        return await self._select("", "m.created_at DESC, m.seq DESC", (check_limit(limit),))

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
        clauses: list[str] = []
        params: list[Any] = []
        if cursor is not None:
            clauses.append("m.seq < ?")
            params.append(decode_cursor(cursor, kind))
        if kind is not None:
            clauses.append("m.type = ?")
            params.append(kind)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        items = await self._select(where, "m.seq DESC", (*params, limit + 1))
        has_more = len(items) > limit
        items = items[:limit]
        next_cursor = None
        if has_more:
            async with self._db.read() as conn:
                last_seq = await scalar(
                    conn, "SELECT seq FROM memories WHERE id = ?", (items[-1].id,)
                )
            if last_seq is None:  # deleted in between: resume from a neighbour
                return await self.list_memories(limit=limit, cursor=cursor, type=type)
            next_cursor = encode_cursor(int(last_seq), kind)
        return Page[MemoryEntry](items=items, next_cursor=next_cursor, has_more=has_more)

    async def get_stats(self) -> MemoryStats:
        """Counts, mean importance, accesses, embedding coverage."""
        async with self._db.read() as conn:
            by_type = {
                MemoryType(t): int(n)
                for t, n in await fetch_all(
                    conn, "SELECT type, count(*) FROM memories GROUP BY type"
                )
            }
            ((total, avg, accesses, with_vec),) = await fetch_all(
                conn,
                "SELECT count(*), coalesce(avg(importance), 0), "
                "coalesce(sum(access_count), 0), coalesce(sum(has_embedding), 0) FROM memories",
            )
            meta = await read_meta(conn, ("dimensions",))
        return MemoryStats(
            total=int(total),
            by_type=by_type,
            avg_importance=float(avg),
            total_accesses=int(accesses),
            with_embedding=int(with_vec),
            without_embedding=int(total) - int(with_vec),
            embedding_model=self._embedder.name if self._embedder else None,
            embedding_dimensions=meta.get("dimensions"),
        )
