"""Model-based: random work on the Worker's task store and on the kit's reference store.

The dependency rules run ported to TypeScript in the Worker; the same random
calls must leave every task as the reference store (the Python rules) leaves it.
"""

import pytest

from jetpack.cf_beads import CloudflareTaskStore
from jetpack.shared.testing import agree_on_random_work
from jetpack.shared.testing.edge import EdgeProject


@pytest.mark.parametrize("seed", range(8))
async def test_the_worker_and_the_reference_agree_on_random_work(
    edge_project: EdgeProject, seed: int
) -> None:
    async with CloudflareTaskStore(edge_project.url, edge_project.token, retry_base_ms=0) as store:
        await agree_on_random_work(store, seed)
