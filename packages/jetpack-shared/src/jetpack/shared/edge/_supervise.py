"""Run one command in its own process group and take the whole group down with us.

``python -m jetpack.shared.edge._supervise -- CMD…`` starts CMD (wrangler,
which starts workerd) in a new session and ends every process of it when:

- this process gets SIGTERM, SIGINT or SIGHUP (Ctrl-C, ``kill``);
- its standard input closes, i.e. the parent that holds the other end died,
  even by SIGKILL (so a killed test run leaves no workerd behind);
- the command exits by itself (then with its exit code).

Ending the group is SIGTERM, then SIGKILL after a grace period. POSIX only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

__all__ = ["main"]

GRACE_S = 5.0


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, even if the leader left
    proc.wait()


def main(argv: list[str]) -> int:
    """Supervise ``argv`` (after an optional ``--``); return its exit code."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: python -m jetpack.shared.edge._supervise -- CMD [ARG...]\n")
        return 2
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    def watch_stdin() -> None:
        try:  # raw reads: no buffered-reader lock held at interpreter exit
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, name="parent-watch", daemon=True).start()

    def watch_child() -> None:
        proc.wait()
        stop.set()

    threading.Thread(target=watch_child, name="child-watch", daemon=True).start()
    while not stop.wait(0.5):
        pass
    _end_group(proc)
    return proc.returncode if proc.returncode is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
