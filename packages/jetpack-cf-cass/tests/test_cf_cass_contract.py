"""The conformance kit, unchanged, against CloudflareMemoryStore on a real Worker (workerd)."""

from __future__ import annotations

import pytest

from jetpack.shared.testing import MemoryStoreContract, StoreSpec
from jetpack.shared.testing.edge import EdgeProject


class TestCloudflareMemoryStoreContract(MemoryStoreContract):
    @pytest.fixture
    def store_spec(self, edge_project: EdgeProject) -> StoreSpec:
        return StoreSpec(
            "jetpack.cf_cass:CloudflareMemoryStore",
            {"worker_url": edge_project.url, "api_token": edge_project.token},
        )
