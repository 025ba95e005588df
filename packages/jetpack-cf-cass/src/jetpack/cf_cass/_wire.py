"""The memory routes of the Worker as seen from Python: paths, bodies, answers.

Bodies are the JSON of ``jetpack.shared.MemoryInput`` plus ``embedding_model``
(``MemoryWrite`` in ``worker/schemas.ts``; a test compares the two through the
Worker's OpenAPI document). Vectors travel as base64 of little-endian float32
(4 bytes a value instead of about 20 as JSON text); the Worker also reads a
JSON list of numbers.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from typing import Any, Literal, Protocol
from urllib.parse import quote

from pydantic import BaseModel

from jetpack.shared import MemoryEntry, MemoryInput, MemoryStats, Page

__all__ = [
    "BACKFILL",
    "BATCH",
    "COMPACT",
    "HYBRID",
    "INDEX",
    "MEMORY",
    "RECENT",
    "SEARCH",
    "SEMANTIC",
    "STATS",
    "WAITING",
    "Hybrid",
    "IndexState",
    "encode_vector",
    "entries_of",
    "entry_of",
    "memory_path",
    "page_of",
    "stats_of",
    "type_path",
    "waiting_of",
    "write_body",
]

MEMORY = "/api/memory"
BATCH = "/api/memory/batch"
RECENT = "/api/memory/_recent"
STATS = "/api/memory/_stats"
INDEX = "/api/memory/_index"
WAITING = "/api/memory/_backfill"
BACKFILL = "/api/memory/backfill"
SEARCH = "/api/memory/search"
SEMANTIC = "/api/memory/semantic"
HYBRID = "/api/memory/hybrid"
COMPACT = "/api/memory/compact"


def memory_path(memory_id: str) -> str:
    """``/api/memory/{id}``; the id is percent-encoded whole (ids may hold ``/`` and ``:``)."""
    return f"{MEMORY}/{quote(memory_id, safe='')}"


def type_path(memory_type: str) -> str:
    """``/api/memory/type/{type}``."""
    return f"{MEMORY}/type/{quote(memory_type, safe='')}"


def encode_vector(values: Sequence[float]) -> str:
    """Base64 of the values as little-endian float32 (checked vectors fit float32)."""
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def write_body(
    item: MemoryInput, vector: Sequence[float] | None, model: str | None
) -> dict[str, Any]:
    """One memory as the Worker reads it; ``model`` made ``vector`` (an embedder, or ``caller``)."""
    body = item.model_dump(mode="json", exclude={"embedding"})
    body["embedding"] = None if vector is None else encode_vector(vector)
    body["embedding_model"] = None if vector is None else model
    return body


class _Answer(Protocol):
    """An HTTP answer (``httpx.Response``): only its body is read here."""

    @property
    def content(self) -> bytes: ...


class _MemoryList(BaseModel):
    memories: list[MemoryEntry]


class _Scored(BaseModel):
    id: str
    score: float


class Hybrid(BaseModel):
    """The two ranked lists of a hybrid search and their memories (the client fuses them)."""

    text: list[_Scored]
    semantic: list[_Scored]
    memories: list[MemoryEntry]


class IndexState(BaseModel):
    """Where a project's vectors are searched, and how far Vectorize lags behind its writes."""

    index: Literal["built-in", "vectorize"]
    vectors: int
    unconfirmed: int
    """Vectors Vectorize may not show yet (the Worker searches them itself meanwhile)."""
    deletes_unconfirmed: int
    """Deletes Vectorize may not show yet (the Worker filters them out meanwhile)."""
    embedding_model: str | None
    dimensions: int | None


class _Waiting(BaseModel):
    id: str
    content: str


class _WaitingList(BaseModel):
    memories: list[_Waiting]


# Answers are parsed straight from their bytes by pydantic-core (no json.loads first).


def entry_of(answer: _Answer) -> MemoryEntry:
    """The memory an answer carries."""
    return MemoryEntry.model_validate_json(answer.content)


def entries_of(answer: _Answer) -> list[MemoryEntry]:
    """The memories of a ``{"memories": [...]}`` answer, in order."""
    return _MemoryList.model_validate_json(answer.content).memories


def page_of(answer: _Answer) -> Page[MemoryEntry]:
    """A page of ``GET /api/memory``."""
    return Page[MemoryEntry].model_validate_json(answer.content)


def stats_of(answer: _Answer) -> MemoryStats:
    """The stats of ``GET /api/memory/_stats``."""
    return MemoryStats.model_validate_json(answer.content)


def waiting_of(answer: _Answer) -> list[tuple[str, str]]:
    """``(id, content)`` of the memories waiting for a vector, oldest first."""
    return [(m.id, m.content) for m in _WaitingList.model_validate_json(answer.content).memories]
