"""Child processes in their own process group, with a deadline, a silence watchdog and a clean kill.

Every child starts a new session (``start_new_session=True``), so it and all
that it spawns share one process group that the terminal's Ctrl+C does not
reach. On timeout, silence, cancellation or exit, :func:`kill_process_group`
sends SIGTERM to the whole group, waits a grace period, then SIGKILL: nothing
is left behind (the original tested ``proc.killed`` and never escalated).

No ``fork()`` happens here: children are spawned without ``preexec_fn``, so
CPython starts them with ``vfork``/``posix_spawn``, which run no ``pthread_atfork``
handler. A real ``fork()`` from a process in which another thread is inside a
native library (OpenBLAS under the embedder, for one) runs that library's fork
handler, which can wait forever on a thread pool that never drains. The
die-with-parent guarantee that ``preexec_fn`` used to give is kept by an exec
wrapper instead: see :func:`die_with_parent_prefix`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ProcessResult",
    "die_with_parent_prefix",
    "group_alive",
    "kill_live_groups",
    "kill_process_group",
    "live_groups",
    "run_process",
]

logger = logging.getLogger(__name__)

LINE_LIMIT = 16 * 1024 * 1024
"""Longest stdout line read as one line (stream-json lines can be large)."""
TAIL_LINES = 200
"""Lines of stdout and stderr kept for error messages."""
REAP_WAIT_S = 1.0
"""After SIGKILL, how long to wait for the group to disappear (SIGKILL cannot be ignored)."""

_LIVE_GROUPS: set[int] = set()


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


_PY_WRAPPER = (
    "import ctypes,os,sys\n"
    "ctypes.CDLL(None,use_errno=True).prctl(1,9)\n"  # PR_SET_PDEATHSIG, SIGKILL
    "if os.getppid()!=int(sys.argv[1]):os._exit(137)\n"  # the parent died before prctl
    "os.execv(sys.argv[2],sys.argv[2:])"
)


@functools.cache
def _setpriv() -> str | None:
    """``setpriv`` (util-linux >= 2.33) if it is installed and can set PDEATHSIG here."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        probe = subprocess.run(
            [path, "--pdeathsig", "KILL", "--", "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return path if probe.returncode == 0 else None


def die_with_parent_prefix(mode: str | None = None) -> list[str]:
    """The argv prefix that makes a child get SIGKILL when this process dies.

    Without it, a ``jetpack start`` killed with SIGKILL would leave its agents'
    children running (they are in their own sessions), still editing files
    while the recovered task runs again elsewhere. On Linux the kernel does it
    (``PR_SET_PDEATHSIG``), set between exec's by a wrapper, since no Python code
    may run in the child before exec:

    - ``setpriv --pdeathsig KILL --`` (util-linux), a small C program: the default;
    - else this interpreter with a three-line ``prctl`` + ``execv`` script, which
      also exits if the parent died before the ``prctl`` (slower: ~20 ms a spawn).

    Elsewhere (macOS, BSD) there is no such kernel feature: the prefix is empty,
    and only a stop by signal (Ctrl+C, SIGTERM) kills the children.
    ``mode`` forces ``"setpriv"``, ``"python"`` or ``"none"`` (tests).
    """
    if mode is None:
        if not sys.platform.startswith("linux"):
            return []
        mode = "setpriv" if _setpriv() is not None else "python"
    if mode == "setpriv":
        setpriv = _setpriv()
        if setpriv is None:
            raise RuntimeError("setpriv with --pdeathsig is not available")
        return [setpriv, "--pdeathsig", "KILL", "--"]
    if mode == "python":
        return [sys.executable, "-I", "-S", "-c", _PY_WRAPPER, str(os.getpid())]
    return []


_PREFIX_MODE: str | None = None
"""Forces :func:`die_with_parent_prefix`'s choice in :func:`run_process` (tests)."""


def _resolve(program: str, cwd: str | os.PathLike[str] | None, env: Mapping[str, str]) -> str:
    """The executable ``program`` names, as exec would find it; OSError if there is none."""
    if os.sep in program:
        path = Path(program)
        if not path.is_absolute() and cwd is not None:
            path = Path(cwd) / path
        if not path.is_file():
            raise FileNotFoundError(f"No such file: {program}")
        if not os.access(path, os.X_OK):
            raise PermissionError(f"Not executable: {program}")
        return str(path)
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(f"{program}: command not found on PATH")
    return found


def live_groups() -> set[int]:
    """Process groups started by :func:`run_process` and not yet reaped."""
    return set(_LIVE_GROUPS)


def kill_live_groups() -> int:
    """SIGKILL every live group at once (a last resort before exiting); return how many."""
    killed = 0
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
    return killed


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
    with os.scandir("/proc") as entries:
        for entry in entries:
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
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, REAP_WAIT_S)):
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
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=REAP_WAIT_S)


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
    child_env = dict(env) if env is not None else dict(os.environ)
    try:
        program = _resolve(argv[0], cwd, child_env)
        proc = await asyncio.create_subprocess_exec(
            *die_with_parent_prefix(_PREFIX_MODE),
            program,
            *argv[1:],
            cwd=cwd,
            env=child_env,
            stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
    except OSError as exc:
        return ProcessResult(None, time.monotonic() - started, spawn_error=f"{argv[0]}: {exc}")
    _LIVE_GROUPS.add(proc.pid)
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
    try:
        await kill_process_group(proc, grace_s=grace_s)
    finally:
        _LIVE_GROUPS.discard(proc.pid)
    _, pending = await asyncio.wait(pumps, timeout=1.0)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
