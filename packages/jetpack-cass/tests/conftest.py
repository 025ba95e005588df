"""Fixtures for jetpack-cass tests: a store on a temporary file, a tiny embedder."""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from jetpack.cass import CASSAdapter


class WordHashEmbedder:
    """Deterministic bag-of-words vectors (not a model): words hashed into buckets."""

    def __init__(self, dimensions: int = 32, name: str = "test-hash-32") -> None:
        self.name = name
        self.dimensions = dimensions
        self.calls = 0
        self.fail = False

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("embedding service down")
        out = []
        for text in texts:
            vec = [0.0] * self.dimensions
            for word in text.lower().split():
                vec[hashlib.sha256(word.encode()).digest()[0] % self.dimensions] += 1.0
            if not any(vec):
                vec[0] = 1.0
            norm = math.sqrt(sum(v * v for v in vec))
            out.append([v / norm for v in vec])
        return out

    async def aclose(self) -> None:
        return None


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cass" / "memories.db"


@pytest_asyncio.fixture
async def store(db_path: Path) -> AsyncIterator[CASSAdapter]:
    async with CASSAdapter(db_path, embedder=None) as opened:
        yield opened


@pytest.fixture
def make_embedder() -> type[WordHashEmbedder]:
    """The WordHashEmbedder class (test modules cannot import conftest)."""
    return WordHashEmbedder
