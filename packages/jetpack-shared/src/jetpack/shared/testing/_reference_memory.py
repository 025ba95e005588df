"""In-memory reference MemoryStore: the kit's proof that its rules can be met.

Pure Python (no numpy): token BM25 for text, exact cosine for vectors, fuse_hybrid to
fuse them. Instances given the same :class:`InMemoryMemoryDB` see the same
entries, as two opens of one file would. A test aid, never a backend.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jetpack.shared._base import parse
from jetpack.shared._lifecycle import AsyncStoreMixin
from jetpack.shared._memory import (
    MemoryEntry,
    MemoryInput,
    MemoryStats,
    MemoryType,
    Page,
    check_embedding,
)
from jetpack.shared._protocols import Embedder
from jetpack.shared._time import utcnow
from jetpack.shared.errors import ConflictError, NotFoundError, ValidationError
from jetpack.shared.rules import (
    check_options,
    check_text,
    fuse_hybrid,
    new_memory_id,
    retention_score,
)

__all__ = ["InMemoryMemoryDB", "InMemoryMemoryStore", "tokenize"]

_TOKEN = re.compile(r"[\w][\w./:-]*[\w]|\w", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, keeping identifiers whole and also split into parts."""
    out: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group()
        out.append(token)
        parts = re.split(r"[./:_-]+", token)
        if len(parts) > 1:
            out.extend(p for p in parts if p)
    return out


@dataclass
class InMemoryMemoryDB:
    """Entries and vectors shared by the stores opened on it."""

    entries: dict[str, MemoryEntry] = field(default_factory=dict)
    vectors: dict[str, list[float]] = field(default_factory=dict)
    dimensions: int | None = None


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ValidationError("limit", "must be an integer from 1 to 10000")
    return limit


class InMemoryMemoryStore(AsyncStoreMixin):
    """A MemoryStore in dicts. Options: ``embedder``, ``max_entries``, ``protected_types``."""

    def __init__(
        self,
        *,
        db: InMemoryMemoryDB | None = None,
        embedder: Embedder | None = None,
        max_entries: int = 10_000,
        protected_types: Iterable[MemoryType] = (MemoryType.CODEBASE_KNOWLEDGE,),
        **unknown: object,
    ) -> None:
        check_options(unknown, ("db", "embedder", "max_entries", "protected_types"))
        if max_entries < 1:
            raise ValidationError("max_entries", "must be >= 1")
        self._db = db if db is not None else InMemoryMemoryDB()
        self._embedder = embedder
        self.max_entries = max_entries
        self.protected_types = frozenset(MemoryType(t) for t in protected_types)
        self._lock = asyncio.Lock()
        if embedder is not None:
            self._db.dimensions = self._db.dimensions or embedder.dimensions

    def _check_vector(self, vector: Sequence[float], dims: int | None, field: str) -> list[float]:
        try:
            values = check_embedding([float(v) for v in vector])
        except (TypeError, ValueError) as exc:
            raise ValidationError(field, str(exc)) from exc
        if dims is not None and len(values) != dims:
            raise ValidationError(field, f"has {len(values)} dimensions; this store uses {dims}")
        return values

    async def store(self, entry: MemoryInput | Mapping[str, Any]) -> str:
        """Store one memory."""
        return (await self.store_many([entry]))[0]

    async def store_many(self, entries: Sequence[MemoryInput | Mapping[str, Any]]) -> list[str]:
        """Store many, all or none."""
        inputs = [parse(MemoryInput, e) for e in entries]
        missing = [i for i, e in enumerate(inputs) if e.embedding is None]
        computed: dict[int, list[float]] = {}
        if self._embedder is not None and missing:
            vectors = await self._embedder.embed([inputs[i].content for i in missing])
            computed = dict(zip(missing, vectors, strict=True))
        async with self._lock:
            dims = self._db.dimensions
            staged: list[tuple[MemoryEntry, list[float] | None]] = []
            ids = set(self._db.entries)
            now = utcnow()
            for i, item in enumerate(inputs):
                memory_id = item.id or new_memory_id()
                if memory_id in ids:
                    raise ConflictError(f"memory {memory_id!r} already exists")
                ids.add(memory_id)
                vector = item.embedding if item.embedding is not None else computed.get(i)
                if vector is not None:
                    vector = self._check_vector(vector, dims, "embedding")
                    dims = len(vector)
                model = None
                if vector is not None:
                    from_embedder = item.embedding is None and self._embedder
                    model = self._embedder.name if from_embedder and self._embedder else "caller"
                staged.append(
                    (
                        MemoryEntry(
                            id=memory_id,
                            type=item.type,
                            content=item.content,
                            importance=item.importance,
                            metadata=item.metadata,
                            has_embedding=vector is not None,
                            embedding_model=model,
                            created_at=now,
                            last_accessed=now,
                        ),
                        vector,
                    )
                )
            for entry, vector in staged:
                self._db.entries[entry.id] = entry
                if vector is not None:
                    self._db.vectors[entry.id] = vector
            self._db.dimensions = dims
            if len(self._db.entries) > self.max_entries:
                self._trim(keep={staged[-1][0].id})
            return [entry.id for entry, _ in staged]

    async def retrieve(self, memory_id: str) -> MemoryEntry | None:
        """Return the entry after bumping its access stats."""
        async with self._lock:
            entry = self._db.entries.get(memory_id)
            if entry is None:
                return None
            entry = entry.model_copy(
                update={
                    "access_count": entry.access_count + 1,
                    "last_accessed": utcnow(),
                    "version": entry.version + 1,
                }
            )
            self._db.entries[memory_id] = entry
            return entry

    async def delete(self, memory_id: str) -> bool:
        """Delete one entry."""
        async with self._lock:
            self._db.vectors.pop(memory_id, None)
            return self._db.entries.pop(memory_id, None) is not None

    def _bm25(self, query: str) -> list[tuple[str, float]]:
        terms = set(tokenize(query))
        if not terms:
            return []
        docs = {i: Counter(tokenize(e.content)) for i, e in self._db.entries.items()}
        n = len(docs)
        avg = sum(sum(c.values()) for c in docs.values()) / max(n, 1)
        scores: dict[str, float] = {}
        for term in terms:
            df = sum(1 for c in docs.values() if term in c)
            if not df:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for doc_id, counts in docs.items():
                tf = counts.get(term, 0)
                if tf:
                    length = sum(counts.values())
                    norm = tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / max(avg, 1)))
                    scores[doc_id] = scores.get(doc_id, 0.0) + idf * norm
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))

    def _with_score(self, ranked: Iterable[tuple[str, float]], limit: int) -> list[MemoryEntry]:
        out = []
        for memory_id, score in ranked:
            out.append(self._db.entries[memory_id].model_copy(update={"score": score}))
            if len(out) == limit:
                break
        return out

    async def search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Token BM25."""
        check_text(query, "query")
        _check_limit(limit)
        return self._with_score(self._bm25(query), limit)

    def _cosine_rank(self, vector: Sequence[float]) -> list[tuple[str, float]]:
        query = self._check_vector(vector, self._db.dimensions, "embedding")
        ranked = [(i, _cosine(query, v)) for i, v in self._db.vectors.items()]
        return sorted(ranked, key=lambda kv: (-kv[1], kv[0]))

    async def semantic_search(
        self, embedding: Sequence[float], limit: int = 10
    ) -> list[MemoryEntry]:
        """Exact cosine top-k."""
        _check_limit(limit)
        return self._with_score(self._cosine_rank(embedding), limit)

    async def semantic_search_by_query(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """Embed then search; text search without an embedder."""
        check_text(query, "query")
        if self._embedder is None:
            return await self.search(query, limit)
        (vector,) = await self._embedder.embed([query])
        return await self.semantic_search(vector, limit)

    async def hybrid_search(self, query: str, limit: int = 10) -> list[MemoryEntry]:
        """BM25 and cosine results fused by :func:`jetpack.shared.rules.fuse_hybrid`."""
        check_text(query, "query")
        _check_limit(limit)
        text = self._bm25(query)
        if self._embedder is None or not self._db.vectors:
            return self._with_score(text, limit)
        (vector,) = await self._embedder.embed([query])
        depth = max(limit * 5, 50)
        fused = fuse_hybrid(text[:depth], self._cosine_rank(vector)[:depth])
        return self._with_score(fused, limit)

    async def compact(self, threshold: float) -> int:
        """Delete unprotected entries below ``threshold``."""
        if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            raise ValidationError("threshold", "must be between 0 and 1")
        async with self._lock:
            doomed = [
                e.id
                for e in self._db.entries.values()
                if e.importance < threshold and e.type not in self.protected_types
            ]
            for memory_id in doomed:
                self._db.entries.pop(memory_id)
                self._db.vectors.pop(memory_id, None)
            return len(doomed)

    def _trim(self, keep: set[str]) -> int:
        excess = len(self._db.entries) - self.max_entries
        if excess <= 0:
            return 0
        now = utcnow()
        candidates = sorted(
            (e for e in self._db.entries.values() if e.id not in keep),
            key=lambda e: (
                retention_score(e.importance, e.last_accessed, e.access_count, now),
                e.created_at,
            ),
        )
        for entry in candidates[:excess]:
            self._db.entries.pop(entry.id)
            self._db.vectors.pop(entry.id, None)
        return min(excess, len(candidates))

    async def adaptive_compact(self) -> int:
        """Trim to max_entries by retention score, sparing the newest entry."""
        async with self._lock:
            newest = max(self._db.entries.values(), key=lambda e: e.created_at, default=None)
            return self._trim({newest.id} if newest else set())

    async def update_importance(self, memory_id: str, importance: float) -> None:
        """Set importance."""
        if isinstance(importance, bool) or not isinstance(importance, int | float):
            raise ValidationError("importance", "must be a number between 0 and 1")
        if not 0.0 <= importance <= 1.0:
            raise ValidationError("importance", "must be between 0 and 1")
        async with self._lock:
            entry = self._db.entries.get(memory_id)
            if entry is None:
                raise NotFoundError("memory", memory_id)
            self._db.entries[memory_id] = entry.model_copy(
                update={"importance": float(importance), "version": entry.version + 1}
            )

    async def get_by_type(self, type: MemoryType, limit: int = 50) -> list[MemoryEntry]:
        """Most important first."""
        _check_limit(limit)
        kind = parse_type(type)
        rows = [e for e in self._db.entries.values() if e.type is kind]
        rows.sort(key=lambda e: (-e.importance, -e.last_accessed.timestamp(), e.id))
        return rows[:limit]

    async def get_recent_memories(self, limit: int = 50) -> list[MemoryEntry]:
        """Newest first."""
        _check_limit(limit)
        return sorted(self._db.entries.values(), key=lambda e: (e.created_at, e.id), reverse=True)[
            :limit
        ]

    async def list_memories(
        self, *, limit: int = 50, cursor: str | None = None, type: MemoryType | None = None
    ) -> Page[MemoryEntry]:
        """Keyset pages over (created_at, id), newest first."""
        _check_limit(limit)
        rows = sorted(self._db.entries.values(), key=lambda e: (e.created_at, e.id), reverse=True)
        if type is not None:
            kind = parse_type(type)
            rows = [e for e in rows if e.type is kind]
        if cursor is not None:
            key = decode_cursor(cursor)
            rows = [e for e in rows if (e.created_at.isoformat(), e.id) < key]
        page = rows[:limit]
        has_more = len(rows) > limit
        next_cursor = (
            encode_cursor(page[-1].created_at.isoformat(), page[-1].id) if has_more else None
        )
        return Page[MemoryEntry](items=page, next_cursor=next_cursor, has_more=has_more)

    async def get_stats(self) -> MemoryStats:
        """Counts."""
        entries = list(self._db.entries.values())
        with_vec = sum(e.has_embedding for e in entries)
        return MemoryStats(
            total=len(entries),
            by_type=dict(Counter(e.type for e in entries)),
            avg_importance=sum(e.importance for e in entries) / len(entries) if entries else 0.0,
            total_accesses=sum(e.access_count for e in entries),
            with_embedding=with_vec,
            without_embedding=len(entries) - with_vec,
            embedding_model=self._embedder.name if self._embedder else None,
            embedding_dimensions=self._db.dimensions,
        )

    async def backfill_embeddings(self, batch_size: int = 32) -> int:
        """Embed up to ``batch_size`` entries that lack a vector."""
        if batch_size < 1:
            raise ValidationError("batch_size", "must be >= 1")
        if self._embedder is None:
            return 0
        todo = sorted(
            (e for e in self._db.entries.values() if not e.has_embedding),
            key=lambda e: (e.created_at, e.id),
        )
        todo = todo[:batch_size]
        if not todo:
            return 0
        vectors = await self._embedder.embed([e.content for e in todo])
        async with self._lock:
            for entry, vector in zip(todo, vectors, strict=True):
                if entry.id in self._db.entries:
                    self._db.vectors[entry.id] = self._check_vector(
                        vector, self._db.dimensions, "embedding"
                    )
                    self._db.entries[entry.id] = entry.model_copy(
                        update={"has_embedding": True, "embedding_model": self._embedder.name}
                    )
        return len(todo)


def parse_type(value: MemoryType | str) -> MemoryType:
    """Parse a memory type or raise ValidationError('type')."""
    try:
        return MemoryType(value)
    except ValueError:
        raise ValidationError("type", f"unknown memory type {value!r}") from None


def encode_cursor(*key: str) -> str:
    """Opaque cursor for a keyset position."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, ...]:
    """Decode a cursor, or raise ValidationError('cursor')."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValidationError("cursor", "is not a cursor this store issued") from exc
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        raise ValidationError("cursor", "is not a cursor this store issued")
    return tuple(key)
