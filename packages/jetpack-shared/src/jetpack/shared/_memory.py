"""Memory models: entries, inputs, stats and pages."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Generic, TypeVar

from pydantic import Field, StringConstraints, field_validator

from jetpack.shared._base import MAX_TEXT_CHARS, Identifier, JetpackModel, JsonObject, UtcDatetime

__all__ = [
    "CALLER_MODEL",
    "FLOAT32_MAX",
    "MAX_EMBEDDING_DIMENSIONS",
    "MemoryEntry",
    "MemoryInput",
    "MemoryStats",
    "MemoryType",
    "Page",
]

MAX_EMBEDDING_DIMENSIONS = 4096
"""Largest vector accepted."""
CALLER_MODEL = "caller"
"""Model name a store records with a vector the caller supplied (not its embedder's)."""
FLOAT32_MAX = 3.4028234663852886e38
"""Largest finite float32. Vectors are stored and compared as float32, where cosine
similarity squares them: a vector's length may be at most ``sqrt(FLOAT32_MAX)``."""
_MAX_NORM = math.sqrt(FLOAT32_MAX)
_FLOAT32_TINY = 1.401298464324817e-45
"""Smallest positive float32 (a subnormal): smaller magnitudes round to 0."""

T = TypeVar("T")


class MemoryType(StrEnum):
    """The nine kinds of memory."""

    CODEBASE_KNOWLEDGE = "codebase_knowledge"
    AGENT_LEARNING = "agent_learning"
    PATTERN_RECOGNITION = "pattern_recognition"
    CONVERSATION_HISTORY = "conversation_history"
    DECISION_RATIONALE = "decision_rationale"
    TEST_FAILURE_ANALYSIS = "test_failure_analysis"
    QUALITY_IMPROVEMENT = "quality_improvement"
    REGRESSION_PATTERN = "regression_pattern"
    SUCCESSFUL_FIX = "successful_fix"


Content = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
Importance = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def check_embedding(values: list[float]) -> list[float]:
    """Refuse empty, oversized, non-finite and zero vectors, and vectors float32 cannot hold.

    Vectors are stored and compared as float32: a length (L2 norm) above
    ``sqrt(FLOAT32_MAX)`` (about 1.8e19) overflows when squared, and a vector
    whose every value is below float32's smallest step becomes a zero vector.
    """
    if not values:
        raise ValueError("must not be empty")
    if len(values) > MAX_EMBEDDING_DIMENSIONS:
        raise ValueError(f"has more than {MAX_EMBEDDING_DIMENSIONS} dimensions")
    if not all(map(math.isfinite, values)):
        raise ValueError("must hold finite numbers only")
    problem = float32_problem(math.hypot(*values), any(values), _any_float32(values))
    if problem:
        raise ValueError(problem)
    return values


def _any_float32(values: list[float]) -> bool:
    return any(abs(v) >= _FLOAT32_TINY for v in values)


def float32_problem(norm: float, nonzero: bool, nonzero_as_float32: bool) -> str | None:
    """Why a finite vector cannot be stored as float32 (from its norm and zero tests), or None."""
    if not nonzero:
        return "is a zero vector; cosine similarity is undefined for it"
    if norm > _MAX_NORM:
        return (
            f"does not fit float32: its length {norm:.3g} exceeds {_MAX_NORM:.3g}, so its"
            " square (used by cosine similarity) would be infinite; scale it down"
        )
    if not nonzero_as_float32:
        return (
            "does not fit float32: every value is below its smallest step"
            f" ({_FLOAT32_TINY:.3g}) and would round to a zero vector; scale it up"
        )
    return None


class MemoryInput(JetpackModel):
    """What a caller gives to store a memory."""

    id: Identifier | None = Field(default=None, description="Explicit id; must be new.")
    type: MemoryType = Field(description="Kind of memory.")
    content: Content = Field(description="The text remembered.")
    importance: Importance = Field(default=0.5, description="0 (forgettable) to 1 (keep).")
    metadata: JsonObject = Field(default_factory=dict, description="Free JSON object.")
    embedding: list[float] | None = Field(
        default=None, description="Vector supplied by the caller; else the store's embedder."
    )

    @field_validator("embedding")
    @classmethod
    def _check_embedding(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else check_embedding(value)


class MemoryEntry(JetpackModel):
    """A stored memory. ``score`` is set by search methods (higher is better)."""

    id: Identifier = Field(description="Memory id, e.g. 'mem-…'.")
    type: MemoryType = Field(description="Kind of memory.")
    content: Content = Field(description="The text remembered.")
    importance: Importance = Field(default=0.5, description="0 to 1.")
    metadata: JsonObject = Field(default_factory=dict, description="Free JSON object.")
    has_embedding: bool = Field(default=False, description="A vector is stored for it.")
    embedding_model: str | None = Field(default=None, description="Model of that vector.")
    created_at: UtcDatetime = Field(description="When stored.")
    last_accessed: UtcDatetime = Field(description="Last retrieve (or creation).")
    access_count: int = Field(default=0, ge=0, description="Number of retrieves.")
    version: int = Field(default=1, ge=1, description="Incremented on every write.")
    score: float | None = Field(default=None, description="Relevance, set by searches.")


class MemoryStats(JetpackModel):
    """Counts over the whole memory store."""

    total: int = Field(description="All entries.")
    by_type: dict[MemoryType, int] = Field(description="Count per type present.")
    avg_importance: float = Field(description="Mean importance (0 when empty).")
    total_accesses: int = Field(description="Sum of access_count.")
    with_embedding: int = Field(description="Entries with a vector.")
    without_embedding: int = Field(description="Entries without one.")
    embedding_model: str | None = Field(default=None, description="Configured embedder, if any.")
    embedding_dimensions: int | None = Field(default=None, description="Vector size in use.")


class Page(JetpackModel, Generic[T]):
    """One page of a keyset-paginated listing."""

    items: list[T] = Field(description="The entries of this page.")
    next_cursor: str | None = Field(default=None, description="Pass back for the next page.")
    has_more: bool = Field(description="More pages follow.")
