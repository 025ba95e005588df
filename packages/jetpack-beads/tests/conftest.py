from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from jetpack.beads import BeadsAdapter


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "beads.db"


@pytest_asyncio.fixture
async def store(db_path: Path) -> AsyncIterator[BeadsAdapter]:
    async with BeadsAdapter(db_path, retry_base_ms=50) as opened:
        yield opened
