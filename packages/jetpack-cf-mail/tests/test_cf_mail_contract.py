"""The conformance kit, unchanged, against CloudflareMailBus on a real Worker (workerd)."""

from __future__ import annotations

import pytest

from jetpack.shared.testing import MailBusContract, StoreSpec
from jetpack.shared.testing.edge import EdgeProject


class TestCloudflareMailBusContract(MailBusContract):
    multiprocess = True

    @pytest.fixture
    def bus_spec(self, edge_project: EdgeProject) -> StoreSpec:
        return StoreSpec(
            "jetpack.cf_mail:CloudflareMailBus",
            {"worker_url": edge_project.url, "api_token": edge_project.token},
        )
