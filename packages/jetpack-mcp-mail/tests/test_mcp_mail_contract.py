"""The conformance kit, run against MCPMailAdapter with real OS processes."""

from pathlib import Path

import pytest

from jetpack.shared.testing import MailBusContract, StoreSpec


class TestMCPMailContract(MailBusContract):
    multiprocess = True

    @pytest.fixture
    def bus_spec(self, tmp_path: Path) -> StoreSpec:
        return StoreSpec("jetpack.mcp_mail:MCPMailAdapter", {"mail_dir": str(tmp_path / "mail")})
