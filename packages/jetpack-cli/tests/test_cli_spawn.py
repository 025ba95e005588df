"""Spawning without fork(), die-with-parent, and the run guard's signals and deadlines.

Every scenario runs in its own process, bounded by a timeout: the failure these
tests guard against is a process that hangs for good.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jetpack.cli._process import run_process

HERE = Path(__file__).parent


def spawn_while_embedding(spawns: int, timeout: float) -> dict[str, Any]:
    import json

    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "spawn_while_embedding.py"), str(spawns)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{spawns} spawns beside a busy embedder did not finish in {timeout:.0f}s")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    assert report["failures"] == [] and report["embeds"] >= 1, report
    return report


def test_spawning_300_processes_while_a_thread_embeds_finishes() -> None:
    spawn_while_embedding(300, timeout=240)


@pytest.mark.slow
def test_spawning_while_embedding_20_times() -> None:
    for _ in range(20):
        spawn_while_embedding(300, timeout=240)


# ------------------------------------------------------------ die with parent
@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """Pids to SIGKILL after the test, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


PARENT = """
import asyncio, sys
import jetpack.cli._process as process
from jetpack.cli._process import run_process
process._PREFIX_MODE = sys.argv[1]  # the wrapper under test
def line(text):
    sys.stdout.write(text + "\\n"); sys.stdout.flush()
asyncio.run(run_process(["/bin/sh", "-c", "echo $$; exec sleep 120"], on_stdout=line))
"""


@pytest.mark.parametrize("mode", ["setpriv", "python", "none"])
def test_children_die_with_a_killed_parent(mode: str, alive: Any, orphans: list[int]) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        orphans.append(child)
        assert alive(child)
    finally:
        parent.kill()  # SIGKILL: no clean-up code runs in the parent
        parent.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if mode == "none":  # the control: without the wrapper the child outlives its parent
        assert alive(child)
    else:
        assert not alive(child)


async def test_a_missing_program_is_a_spawn_error_not_an_exit_code(tmp_path: Path) -> None:
    result = await run_process(["no-such-program-jetpack"], timeout_s=10)
    assert result.spawn_error is not None and "not found" in result.spawn_error
    assert result.exit_code is None and not result.ok
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho ran in $(pwd)\n")
    script.chmod(0o755)
    result = await run_process(["./run.sh"], cwd=tmp_path, timeout_s=10)
    assert result.ok and result.stdout_tail == [f"ran in {tmp_path}"]
    script.chmod(0o644)
    result = await run_process(["./run.sh"], cwd=tmp_path, timeout_s=10)
    assert result.spawn_error is not None and "Not executable" in result.spawn_error


# ------------------------------------------------------------------ the guard
def dies(pid: int, alive: Any, within: float = 5.0) -> bool:
    """True when ``pid`` is gone within ``within`` seconds (SIGKILL takes a moment)."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def guarded(grace: float, kill: float, margin: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "guarded_run.py"), str(grace), str(kill), str(margin)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline().split()[1])
    assert proc.stdout.readline().strip() == "stuck"
    return proc, child


def test_a_stuck_run_ends_at_its_deadline_and_kills_its_children(
    alive: Any, orphans: list[int]
) -> None:
    proc, child = guarded(0.5, 0.5, 0.5)
    orphans.append(child)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert proc.returncode == 130, err
    assert 1.0 <= elapsed < 15, elapsed  # not before grace + kill grace; then promptly
    assert "did not stop within" in err and "killed 1 running process group" in err
    assert dies(child, alive)


def test_a_second_signal_shortens_the_deadline(alive: Any, orphans: list[int]) -> None:
    proc, child = guarded(600, 0.5, 0.5)
    orphans.append(child)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 15
    assert "second SIGINT" in err and "killed 1 running process group" in err
    assert dies(child, alive)


def test_a_third_signal_ends_the_process_at_once(alive: Any, orphans: list[int]) -> None:
    proc, child = guarded(600, 600, 600)
    orphans.append(child)
    started = time.monotonic()
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 15
    assert "SIGINT received again" in err
    assert dies(child, alive)
