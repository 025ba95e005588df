"""Running a Worker: admin token of a local Worker, and no process outlives its parent."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from jetpack.shared.edge import local_admin_token


def test_local_admin_token_env_first_else_a_private_file(tmp_path: Path) -> None:
    assert local_admin_token(tmp_path, {"JETPACK_ADMIN_TOKEN": "from-env"}) == "from-env"
    assert not (tmp_path / "admin-token").exists()
    first = local_admin_token(tmp_path / "edge", {})
    assert len(first) > 40 and local_admin_token(tmp_path / "edge", {}) == first
    mode = stat.S_IMODE((tmp_path / "edge" / "admin-token").stat().st_mode)
    assert mode == 0o600


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_supervised_group_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL the parent: the supervisor sees its stdin close and ends the whole group."""
    pids = tmp_path / "pids"
    parent = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen(
            [sys.executable, "-m", "jetpack.shared.edge._supervise", "--",
             "sh", "-c", "sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"],
            stdin=subprocess.PIPE,
        )
        print(child.pid, flush=True)
        time.sleep(300)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    supervisor = int(proc.stdout.readline())
    deadline = time.monotonic() + 30
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    group = [int(p) for p in pids.read_text().split()]
    assert all(alive(p) for p in group)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 20
    while any(alive(p) for p in [supervisor, *group]):
        assert time.monotonic() < deadline, "children outlived their killed parent"
        time.sleep(0.1)


def test_sigterm_to_the_supervisor_ends_the_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jetpack.shared.edge._supervise",
            "--",
            "sh",
            "-c",
            f"sleep 300 & echo $! >> {pids}; wait",
        ],
        stdin=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pids.read_text().split()[0])
    proc.terminate()
    assert proc.wait(30) is not None
    assert proc.stdin is not None
    proc.stdin.close()
    deadline = time.monotonic() + 10
    while alive(grandchild):
        assert time.monotonic() < deadline
        time.sleep(0.05)
