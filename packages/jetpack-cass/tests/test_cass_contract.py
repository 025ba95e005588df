"""The shared conformance kit, run against CASSAdapter."""

from pathlib import Path

import pytest

from jetpack.shared.testing import MemoryStoreContract, StoreSpec


class TestCassContract(MemoryStoreContract):
    @pytest.fixture
    def store_spec(self, tmp_path: Path) -> StoreSpec:
        return StoreSpec("jetpack.cass:CASSAdapter", {"db_path": str(tmp_path / "memories.db")})


class TestCassSubstringContract(MemoryStoreContract):
    """The same kit with the optional trigram index on."""

    @pytest.fixture
    def store_spec(self, tmp_path: Path) -> StoreSpec:
        return StoreSpec(
            "jetpack.cass:CASSAdapter",
            {"db_path": str(tmp_path / "memories.db"), "substring_search": True},
        )
