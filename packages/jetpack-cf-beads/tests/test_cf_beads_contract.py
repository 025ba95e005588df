"""The conformance kit, unchanged, against CloudflareTaskStore on a real Worker (workerd)."""

from __future__ import annotations

import pytest

from jetpack.shared.testing import StoreSpec, TaskStoreContract
from jetpack.shared.testing.edge import EdgeProject


class TestCloudflareTaskStoreContract(TaskStoreContract):
    multiprocess = True

    @pytest.fixture
    def store_spec(self, edge_project: EdgeProject) -> StoreSpec:
        return StoreSpec(
            "jetpack.cf_beads:CloudflareTaskStore",
            {"worker_url": edge_project.url, "api_token": edge_project.token},
        )
