"""Memory models: entries, inputs, stats and pages."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Generic, TypeVar

from pydantic import Field, StringConstraints, field_validator

from jetpack.shared._base import MAX_TEXT_CHARS, Identifier, JetpackModel, JsonObject, UtcDatetime

__all__ = [
    "MAX_EMBEDDING_DIMENSIONS",
    "MemoryEntry",
    "MemoryInput",
    "MemoryStats",
    "MemoryType",
    "Page",
]

MAX_EMBEDDING_DIMENSIONS = 4096
"""Largest vector accepted."""

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
    """Refuse empty, oversized, non-finite and zero vectors."""
    if not values:
        raise ValueError("must not be empty")
    if len(values) > MAX_EMBEDDING_DIMENSIONS:
        raise ValueError(f"has more than {MAX_EMBEDDING_DIMENSIONS} dimensions")
    if not all(map(math.isfinite, values)):
        raise ValueError("must hold finite numbers only")
    if not any(values):
        raise ValueError("is a zero vector; cosine similarity is undefined for it")
    return values


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
