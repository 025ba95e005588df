"""The shared conformance kit, run against BeadsAdapter (with real OS processes)."""

from pathlib import Path

import pytest

from jetpack.shared.testing import StoreSpec, TaskStoreContract


class TestBeadsContract(TaskStoreContract):
    multiprocess = True

    @pytest.fixture
    def store_spec(self, tmp_path: Path) -> StoreSpec:
        return StoreSpec("jetpack.beads:BeadsAdapter", {"db_path": str(tmp_path / "beads.db")})
