"""Many processes opening one fresh mail store at once: every open succeeds."""

import asyncio
from pathlib import Path

import pytest

from jetpack.shared.testing import StoreSpec, first_open_race


@pytest.mark.multiprocess
async def test_eight_processes_open_a_fresh_store_at_once(tmp_path: Path) -> None:
    """File creation, WAL switch and schema under 8 simultaneous first opens, 20 times."""
    specs = [
        StoreSpec("jetpack.mcp_mail:MCPMailAdapter", {"mail_dir": str(tmp_path / f"mail-{i}")})
        for i in range(20)
    ]
    errors = await asyncio.to_thread(
        first_open_race, specs, args=("agent-open",), probe="list_leases"
    )
    assert errors == []
