"""A process whose event loop is stuck, under a RunGuard (run by test_cli_spawn).

Usage: python guarded_run.py GRACE_S KILL_GRACE_S MARGIN_S

Starts a child group with run_process (`sh` printing its pid, then sleeping),
prints ``child <pid>`` and ``stuck``, then blocks the event loop for good: only
the guard's thread can still act on a signal.
"""

import asyncio
import sys
import time

from jetpack.cli._guard import RunGuard
from jetpack.cli._process import run_process


async def main(guard: RunGuard) -> None:
    guard.attach(asyncio.get_running_loop(), lambda count: None)
    started = asyncio.Event()

    def line(text: str) -> None:
        sys.stdout.write(f"child {text}\n")
        sys.stdout.flush()
        started.set()

    child = asyncio.create_task(
        run_process(["/bin/sh", "-c", "echo $$; exec sleep 120"], on_stdout=line)
    )
    await started.wait()
    sys.stdout.write("stuck\n")
    sys.stdout.flush()
    time.sleep(1000)  # noqa: ASYNC251 - blocks the loop on purpose: only the guard can act
    await child


if __name__ == "__main__":
    grace, kill, margin = (float(a) for a in sys.argv[1:4])
    with RunGuard(grace_s=grace, kill_grace_s=kill, margin_s=margin) as g:
        asyncio.run(main(g))
