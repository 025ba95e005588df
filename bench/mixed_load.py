"""Mixed load over the local stores: 4 processes x 30 s of everything agents do, then a drain.

Run:  hatch run python bench/mixed_load.py [--processes 4] [--seconds 30] [--seed 11]

Each process creates tasks with dependencies, claims with short TTLs (100 ms -
1 s), starts, renews, works past its TTL, completes, fails, releases or
abandons, updates dependencies, priorities and statuses, reopens failed tasks,
and leases files around its work (jetpack-beads + jetpack-mcp-mail on one
folder). Then one agent drains the queue. Prints the final count by status and
what the contract promises: none stranded, none blocked without a cause, no
double completion, no completion after its claim lapsed, no lease overlap.
Exits 1 if a promise broke.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from jetpack.shared.testing import StoreSpec, run_mixed_load


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jetpack-mixed-") as folder:
        root = Path(folder)
        tasks = StoreSpec(
            "jetpack.beads:BeadsAdapter",
            {"db_path": str(root / "beads.db"), "retry_base_ms": 50},
        )
        mail = StoreSpec("jetpack.mcp_mail:MCPMailAdapter", {"mail_dir": str(root / "mail")})
        began = time.monotonic()
        report = await run_mixed_load(
            tasks, mail, processes=args.processes, seconds=args.seconds, seed=args.seed
        )
        for line in report.lines():
            print(line)
        print(f"wall time: {time.monotonic() - began:.1f} s")
        for error in report.errors[:10]:
            print("  error:", error)
        for task_id in (report.stranded + report.stale_blocked)[:10]:
            print("  left behind:", task_id)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
