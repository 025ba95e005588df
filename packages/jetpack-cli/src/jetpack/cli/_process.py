"""Child processes in their own process group, with a deadline, a silence watchdog and a clean kill.

Every child starts a new session (``start_new_session=True``), so it and all
that it spawns share one process group that the terminal's Ctrl+C does not
reach. On timeout, silence, cancellation or exit, :func:`kill_process_group`
sends SIGTERM to the whole group, waits a grace period, then SIGKILL: nothing
is left behind (the original tested ``proc.killed`` and never escalated).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["ProcessResult", "group_alive", "kill_process_group", "run_process"]

logger = logging.getLogger(__name__)

LINE_LIMIT = 16 * 1024 * 1024
"""Longest stdout line read as one line (stream-json lines can be large)."""
TAIL_LINES = 200
"""Lines of stdout and stderr kept for error messages."""


@dataclass(slots=True)
class ProcessResult:
    """How a child process ended."""

    exit_code: int | None
    """Exit status; negative for a signal, None if it could not be reaped."""
    duration_s: float
    timed_out: bool = False
    stalled: bool = False
    cancelled: bool = False
    stdout_tail: list[str] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)
    spawn_error: str | None = None

    @property
    def ok(self) -> bool:
        """Exited by itself with status 0."""
        return self.exit_code == 0 and not (self.timed_out or self.stalled or self.cancelled)


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no libc to load
        return None
    prctl: Callable[[int, int], int] = libc.prctl
    return prctl


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL if the orchestrator dies (Linux).

    Without it, a ``jetpack start`` killed with SIGKILL would leave its agents'
    children running (they are in their own sessions), still editing files
    while the recovered task runs again elsewhere.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process of group ``pgid`` exists.

    Zombies are ignored: an orphaned child waits for PID 1 to reap it, and in a
    container PID 1 may be slow at that; a zombie holds no resources worth waiting for.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


async def kill_process_group(proc: asyncio.subprocess.Process, *, grace_s: float = 5.0) -> None:
    """SIGTERM the child's whole process group, wait ``grace_s``, then SIGKILL it; reap."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        except PermissionError:  # pragma: no cover - a member changed its credentials
            logger.warning("cannot signal process group %d", pgid)
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=0.05)
            elif not group_alive(pgid):
                return
            else:
                await asyncio.sleep(0.05)
        if sig == signal.SIGTERM:
            logger.info(
                "process group %d ignored SIGTERM for %.1fs; sending SIGKILL", pgid, grace_s
            )
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout=5.0)


async def _pump(
    stream: asyncio.StreamReader,
    tail: deque[str],
    on_line: Callable[[str], None] | None,
    activity: list[float],
) -> None:
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # line longer than the limit: drop what was buffered
            logger.warning("dropped an output line longer than %d bytes", LINE_LIMIT)
            activity[0] = time.monotonic()
            continue
        if not raw:
            return
        activity[0] = time.monotonic()
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        tail.append(line)
        if on_line is not None:
            try:
                on_line(line)
            except Exception:
                logger.exception("output handler failed on a line")


async def run_process(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin_data: bytes | None = None,
    timeout_s: float | None = None,
    idle_timeout_s: float | None = None,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    kill_grace_s: float = 5.0,
) -> ProcessResult:
    """Run ``argv`` in a new process group and stream its output, line by line.

    ``timeout_s`` bounds the whole run; ``idle_timeout_s`` bounds silence (no
    line on stdout or stderr). Either ends the run by killing the group.
    Cancelling the awaiting task kills the group too, then re-raises.
    """
    started = time.monotonic()
    out_tail: deque[str] = deque(maxlen=TAIL_LINES)
    err_tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=LINE_LIMIT,
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:
        return ProcessResult(None, time.monotonic() - started, spawn_error=f"{argv[0]}: {exc}")
    activity = [time.monotonic()]
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        asyncio.create_task(_pump(proc.stdout, out_tail, on_stdout, activity)),
        asyncio.create_task(_pump(proc.stderr, err_tail, on_stderr, activity)),
    ]
    result = ProcessResult(None, 0.0)
    try:
        if stdin_data is not None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin_data)
                await proc.stdin.drain()
            proc.stdin.close()
        waiter = asyncio.ensure_future(proc.wait())
        while True:
            now = time.monotonic()
            limits = [1.0]
            if timeout_s is not None:
                limits.append(started + timeout_s - now)
            if idle_timeout_s is not None:
                limits.append(activity[0] + idle_timeout_s - now)
            done, _ = await asyncio.wait({waiter}, timeout=max(0.0, min(limits)))
            if done:
                break
            now = time.monotonic()
            if timeout_s is not None and now >= started + timeout_s:
                result.timed_out = True
                break
            if idle_timeout_s is not None and now >= activity[0] + idle_timeout_s:
                result.stalled = True
                break
        if waiter.done():
            # The leader exited; give the pumps a moment to drain what is buffered.
            # A grandchild holding the pipes open must not keep us here.
            await asyncio.wait(pumps, timeout=2.0)
        else:
            waiter.cancel()
    except asyncio.CancelledError:
        result.cancelled = True
        await asyncio.shield(_finish(proc, pumps, kill_grace_s))
        raise
    await _finish(proc, pumps, kill_grace_s)
    result.exit_code = proc.returncode
    result.duration_s = time.monotonic() - started
    result.stdout_tail = list(out_tail)
    result.stderr_tail = list(err_tail)
    return result


async def _finish(
    proc: asyncio.subprocess.Process, pumps: list[asyncio.Task[None]], grace_s: float
) -> None:
    """Kill whatever is left of the group, reap the leader, stop the pumps."""
    await kill_process_group(proc, grace_s=grace_s)
    _, pending = await asyncio.wait(pumps, timeout=1.0)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
