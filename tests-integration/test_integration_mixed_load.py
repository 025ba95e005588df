"""Mixed load over the local task store and mail bus (issue 11's done-when).

Four OS processes create, claim with short TTLs, renew, work past their TTL,
complete, fail, release, abandon, update and reopen tasks, and lease files,
all at once; then one agent drains the queue. Every task must end completed,
failed or blocked (none stranded), with no double completion, no completion
after its claim lapsed and no lease overlap. ``bench/mixed_load.py`` prints the
same report for a 30 s run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jetpack.shared.testing import MixedReport, StoreSpec, run_mixed_load


async def mixed(tmp_path: Path, seconds: float) -> MixedReport:
    tasks = StoreSpec(
        "jetpack.beads:BeadsAdapter", {"db_path": str(tmp_path / "beads.db"), "retry_base_ms": 50}
    )
    mail = StoreSpec("jetpack.mcp_mail:MCPMailAdapter", {"mail_dir": str(tmp_path / "mail")})
    return await run_mixed_load(tasks, mail, processes=4, seconds=seconds)


def check(report: MixedReport) -> None:
    summary = "\n".join(report.lines())
    assert report.errors == [], summary
    assert report.stranded == [], summary
    assert report.stale_blocked == [], summary
    assert report.double_completions == [], summary
    assert report.late_completions == 0, summary
    assert report.lease_overlaps == 0, summary
    assert sum(report.by_status.values()) == report.tasks, summary
    # The run really exercised the paths it checks.
    assert report.by_status["completed"] > 0 and report.by_status["failed"] > 0, summary
    assert report.lease_grants > 0, summary


@pytest.mark.multiprocess
async def test_four_processes_for_three_seconds_strand_nothing(tmp_path: Path) -> None:
    check(await mixed(tmp_path, 3.0))


@pytest.mark.multiprocess
@pytest.mark.slow
async def test_four_processes_for_thirty_seconds_strand_nothing(tmp_path: Path) -> None:
    report = await mixed(tmp_path, 30.0)
    check(report)
    assert report.by_status["blocked"] > 0, "\n".join(report.lines())
    assert any(k.endswith(":refused") for k in report.ops), "no lost claim was ever refused"
