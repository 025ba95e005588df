"""Mixed load over the Worker: four OS processes doing everything agents do, at once.

Claims race in single statements while graph edits (updates, reopenings,
creates below failed tasks) are decisions under version guards; afterwards
every task must be completed, failed or blocked (none stranded), no blocked
task without a cause, no task completed twice or after its claim lapsed.
"""

from __future__ import annotations

import pytest

from jetpack.shared.testing import StoreSpec, run_mixed_load
from jetpack.shared.testing.edge import EdgeProject


@pytest.mark.multiprocess
async def test_four_processes_strand_nothing(edge_project: EdgeProject) -> None:
    tasks = StoreSpec(
        "jetpack.cf_beads:CloudflareTaskStore",
        {"worker_url": edge_project.url, "api_token": edge_project.token, "retry_base_ms": 50},
    )
    report = await run_mixed_load(tasks, None, processes=4, seconds=4.0)
    summary = "\n".join(report.lines())
    assert report.ok, summary  # nothing stranded, no stale block, no double or late completion
    assert sum(report.by_status.values()) == report.tasks, summary
    assert report.by_status["completed"] > 0 and report.by_status["failed"] > 0, summary
    assert report.ops.get("update", 0) > 0 and report.ops.get("reopen", 0) > 0, summary
