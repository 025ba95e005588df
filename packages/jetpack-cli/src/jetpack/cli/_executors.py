"""The executor interface, and the command and demo executors.

An executor runs one task attempt and says how it went. It never touches the
stores: the orchestrator claims, leases, verifies, completes or fails. Every
executor kills what it started when its awaiting task is cancelled.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from jetpack.cli._process import ProcessResult, run_process
from jetpack.shared import FailureType, Task
from jetpack.shared.edge import ADMIN_TOKEN_ENV
from jetpack.shared.errors import JetpackError

__all__ = [
    "CommandExecutor",
    "DemoExecutor",
    "ExecutionRequest",
    "ExecutionResult",
    "Executor",
    "ExecutorUnavailableError",
    "InstantExecutor",
    "ProgressEvent",
    "ProgressHandler",
    "child_env",
    "failure_from_process",
    "preflight",
]


class ExecutorUnavailableError(JetpackError):
    """The executor cannot run any task (not installed, not logged in, no command).

    Raised by an executor's ``preflight`` before anything is claimed; the
    message says what is wrong and how to fix it.
    """


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Something an executor reports while it runs (a tool call, a line of text...)."""

    kind: str
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


ProgressHandler = Callable[[ProgressEvent], None]


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """One attempt at one task."""

    task: Task
    prompt: str
    workdir: Path
    timeout_s: float
    idle_timeout_s: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the child (added to the parent's)."""
    agent_id: str = "agent"


@dataclass(slots=True)
class ExecutionResult:
    """How an attempt went. ``ok`` is the executor's verdict, before verification."""

    ok: bool
    summary: str = ""
    """What was done (success) or what went wrong (failure), a few lines at most."""
    error: str | None = None
    failure_type: FailureType | None = None
    exit_code: int | None = None
    duration_s: float = 0.0
    turns: int | None = None
    cost_usd: float | None = None
    session_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    fatal: str | None = None
    """Set when the failure is the run's, not the task's (not logged in, a bad flag):
    the task is handed back without using a retry, the run stops, and this text
    (what is wrong and how to fix it) is shown."""

    def as_result(self) -> dict[str, Any]:
        """The JSON object stored in the task's ``metadata["result"]``."""
        data: dict[str, Any] = {
            "summary": self.summary[:2000],
            "duration_s": round(self.duration_s, 3),
        }
        for key in ("exit_code", "turns", "cost_usd", "session_id"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@runtime_checkable
class Executor(Protocol):
    """Runs one task attempt. Implementations are safe to share between agents."""

    name: str

    async def execute(
        self, request: ExecutionRequest, on_progress: ProgressHandler | None = None
    ) -> ExecutionResult:
        """Run the attempt; never raise for a failed attempt (return ok=False)."""
        ...


async def preflight(executor: Executor, tasks: Sequence[Task]) -> None:
    """Check once, before claiming, that ``executor`` can run ``tasks`` (the open ones).

    Calls the executor's optional ``preflight(tasks)`` method; raises
    :class:`ExecutorUnavailableError` saying how to fix what is missing.
    """
    check = getattr(executor, "preflight", None)
    if check is not None:
        await check(tasks)


def failure_from_process(proc: ProcessResult, what: str) -> tuple[str, FailureType]:
    """The error message and failure type of a process that did not succeed."""
    tail = "\n".join((proc.stderr_tail or proc.stdout_tail)[-20:]).strip()
    if proc.spawn_error:
        return f"could not start {what}: {proc.spawn_error}", FailureType.ERROR
    if proc.timed_out:
        return f"{what} timed out after {proc.duration_s:.1f}s", FailureType.TIMEOUT
    if proc.stalled:
        return f"{what} stalled: no output for too long", FailureType.STALLED
    if proc.cancelled:
        return f"{what} was interrupted", FailureType.ERROR
    message = f"{what} exited with code {proc.exit_code}"
    return (f"{message}: {tail}" if tail else message), FailureType.ERROR


def _program(command: str) -> str | None:
    """The program a shell command starts with, when that is plain to see (else None)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words:
        return None
    first = words[0]
    if "=" in first or "/" in first or any(c in first for c in "$`;&|<>(){}*?[]~!"):
        return None
    return first


def child_env(request: ExecutionRequest, **extra: str) -> dict[str, str]:
    """The environment of an attempt's process: this one's, the request's, ``extra``.

    The Worker's admin token never reaches an agent (it could mint tokens for
    any project); on the edge the agent's own token comes in ``request.env``.
    """
    inherited = {k: v for k, v in os.environ.items() if k != ADMIN_TOKEN_ENV}
    return {**inherited, **request.env, "JETPACK_AGENT_ID": request.agent_id, **extra}


class CommandExecutor:
    """Runs a shell command: the task's ``metadata["command"]``, else a configured default.

    The command sees ``JETPACK_TASK_ID``, ``JETPACK_TASK_TITLE``,
    ``JETPACK_AGENT_ID`` and ``JETPACK_PROMPT_FILE`` (the prompt, written to a
    file). Exit code 0 is success; anything else, a timeout or silence is a failure.
    """

    name = "command"

    def __init__(self, default_command: str | None = None, *, kill_grace_s: float = 5.0) -> None:
        self.default_command = default_command
        self.kill_grace_s = kill_grace_s

    async def preflight(self, tasks: Sequence[Task]) -> None:
        """Refuse a run in which some open task has no command, or a command is not installed."""
        missing = [t.id for t in tasks if self.command_for(t) is None]
        if missing:
            raise ExecutorUnavailableError(
                f"the command executor has no command for {len(missing)} task(s) "
                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                "give one with `jetpack start --command CMD` (or `orchestrator.command` in "
                ".jetpack/config.toml), or per task with `jetpack task add --command CMD`"
            )
        programs = {p for t in tasks if (p := _program(self.command_for(t) or "")) is not None}
        for program in sorted(programs):
            found = await run_process(
                ["/bin/sh", "-c", 'command -v -- "$1" >/dev/null', "sh", program], timeout_s=30
            )
            if not found.ok:
                raise ExecutorUnavailableError(
                    f"the command executor cannot run {program!r}: not found on PATH"
                )

    def command_for(self, task: Task) -> str | None:
        """The shell command this task runs, or None."""
        command = task.metadata.get("command")
        if isinstance(command, str) and command.strip():
            return command
        return self.default_command

    async def execute(
        self, request: ExecutionRequest, on_progress: ProgressHandler | None = None
    ) -> ExecutionResult:
        """Run the task's command in the work dir, in its own process group."""
        command = self.command_for(request.task)
        if command is None:
            return ExecutionResult(
                ok=False,
                error="task has no metadata.command and no default command is configured",
                failure_type=FailureType.ERROR,
            )
        prompt_dir = request.workdir / ".jetpack" / "prompts"
        prompt_dir.mkdir(parents=True, exist_ok=True)
        prompt_file = prompt_dir / f"{request.task.id}.md"
        prompt_file.write_text(request.prompt, encoding="utf-8")
        env = child_env(
            request,
            JETPACK_TASK_ID=request.task.id,
            JETPACK_TASK_TITLE=request.task.title,
            JETPACK_PROMPT_FILE=str(prompt_file),
        )

        def line(text: str) -> None:
            if on_progress is not None:
                on_progress(ProgressEvent("output", text[:500]))

        def err_line(text: str) -> None:
            if on_progress is not None:
                on_progress(ProgressEvent("stderr", text[:500]))

        try:
            proc = await run_process(
                ["/bin/sh", "-c", command],
                cwd=request.workdir,
                env=env,
                timeout_s=request.timeout_s,
                idle_timeout_s=request.idle_timeout_s,
                on_stdout=line,
                on_stderr=err_line,
                kill_grace_s=self.kill_grace_s,
            )
        finally:
            prompt_file.unlink(missing_ok=True)
        if proc.ok:
            summary = "\n".join(proc.stdout_tail[-5:]).strip() or f"ran: {shlex.quote(command)}"
            return ExecutionResult(
                ok=True, summary=summary, exit_code=0, duration_s=proc.duration_s
            )
        error, failure = failure_from_process(proc, "command")
        return ExecutionResult(
            ok=False,
            summary=error,
            error=error,
            failure_type=failure,
            exit_code=proc.exit_code,
            duration_s=proc.duration_s,
        )


class DemoExecutor:
    """A deterministic stand-in for an agent: no network, no API key, no child process.

    Each task "works" for ``base_s`` plus a stable per-task jitter (from a hash
    of its id) and succeeds, unless its metadata says otherwise:
    ``{"demo": {"fail_times": 1}}`` fails the first attempt(s), and
    ``{"demo": {"seconds": 2.5}}`` sets the duration. It also writes a small
    note under ``.jetpack/demo/`` so that the work leaves a visible trace.
    """

    name = "demo"

    def __init__(self, base_s: float = 0.4, jitter_s: float = 0.4) -> None:
        self.base_s = base_s
        self.jitter_s = jitter_s

    def duration_for(self, task: Task) -> float:
        """How long this task pretends to take, in seconds (stable across runs)."""
        spec = task.metadata.get("demo")
        if isinstance(spec, Mapping) and isinstance(spec.get("seconds"), int | float):
            return float(spec["seconds"])
        digest = hashlib.sha256(task.id.encode()).digest()
        return self.base_s + self.jitter_s * (digest[0] / 255)

    async def execute(
        self, request: ExecutionRequest, on_progress: ProgressHandler | None = None
    ) -> ExecutionResult:
        """Sleep in a few steps, reporting progress, then succeed or fail as configured."""
        task = request.task
        total = self.duration_for(task)
        steps = ("reading the task", "planning", "editing", "checking")
        for i, step in enumerate(steps):
            if on_progress is not None:
                on_progress(ProgressEvent("step", step, {"percent": 100 * i // len(steps)}))
            await asyncio.sleep(total / len(steps))
        spec = task.metadata.get("demo")
        fail_times = 0
        if isinstance(spec, Mapping) and isinstance(spec.get("fail_times"), int):
            fail_times = spec["fail_times"]
        if task.retry_count < fail_times:
            error = f"demo failure {task.retry_count + 1} of {fail_times} (planned)"
            return ExecutionResult(
                ok=False,
                summary=error,
                error=error,
                failure_type=FailureType.ERROR,
                duration_s=total,
            )
        notes = request.workdir / ".jetpack" / "demo"
        notes.mkdir(parents=True, exist_ok=True)
        (notes / f"{task.id}.txt").write_text(
            f"{task.title}\ndone by {request.agent_id}\n", encoding="utf-8"
        )
        return ExecutionResult(
            ok=True, summary=f"did: {task.title}", exit_code=0, duration_s=total, turns=len(steps)
        )


class InstantExecutor:
    """Succeeds at once: measures orchestration overhead (benchmarks, tests)."""

    name = "instant"

    async def execute(
        self, request: ExecutionRequest, on_progress: ProgressHandler | None = None
    ) -> ExecutionResult:
        """Return success without doing anything."""
        return ExecutionResult(ok=True, summary="instant", exit_code=0)
