"""Model-based: random operation sequences on BeadsAdapter and the kit's reference store."""

from pathlib import Path

import pytest

from jetpack.beads import BeadsAdapter
from jetpack.shared.testing import agree_on_random_work


@pytest.mark.parametrize("seed", range(20))
async def test_beads_and_the_reference_agree_on_random_work(tmp_path: Path, seed: int) -> None:
    async with BeadsAdapter(tmp_path / "model.db", retry_base_ms=0) as beads:
        await agree_on_random_work(beads, seed)
