"""The kit proves itself: the in-memory reference stores pass every contract test."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetpack.shared.testing import (
    InMemoryMailHub,
    InMemoryMemoryDB,
    MailBusContract,
    MemoryStoreContract,
    StoreSpec,
    TaskStoreContract,
)


class TestReferenceTaskStore(TaskStoreContract):
    @pytest.fixture
    def store_spec(self, tmp_path: Path) -> StoreSpec:
        return StoreSpec("jetpack.shared.testing:InMemoryTaskStore")


class TestReferenceMailBus(MailBusContract):
    @pytest.fixture
    def bus_spec(self, tmp_path: Path) -> StoreSpec:
        return StoreSpec("jetpack.shared.testing:InMemoryMailBus", {"hub": InMemoryMailHub()})


class TestReferenceMemoryStore(MemoryStoreContract):
    @pytest.fixture
    def store_spec(self, tmp_path: Path) -> StoreSpec:
        return StoreSpec("jetpack.shared.testing:InMemoryMemoryStore", {"db": InMemoryMemoryDB()})
