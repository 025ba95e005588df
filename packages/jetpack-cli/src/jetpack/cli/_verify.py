"""The per-task rules of an attempt: its time limit, its verify command, and running that command.

A task's metadata may carry its own ``timeout_s`` and ``verify`` command; the
``[orchestrator]`` settings give the defaults. A successful attempt whose verify
command exits non-zero becomes a failure carrying the command's output.
"""

from __future__ import annotations

from pathlib import Path

from jetpack.cli._executors import ExecutionResult
from jetpack.cli._process import run_process
from jetpack.cli._settings import OrchestratorSettings
from jetpack.shared import FailureType, Task

__all__ = ["attempt_timeout", "verify", "verify_command"]


def verify_command(task: Task, settings: OrchestratorSettings) -> str | None:
    """The task's own ``verify`` command, else ``orchestrator.verify_command`` (None: none)."""
    command = task.metadata.get("verify")
    if isinstance(command, str) and command.strip():
        return command
    return settings.verify_command


def attempt_timeout(task: Task, settings: OrchestratorSettings) -> float:
    """The task's own ``timeout_s``, else ``orchestrator.task_timeout_s``."""
    timeout = task.metadata.get("timeout_s")
    if isinstance(timeout, int | float) and timeout > 0:
        return float(timeout)
    return settings.task_timeout_s


async def verify(
    command: str, workdir: Path, result: ExecutionResult, settings: OrchestratorSettings
) -> ExecutionResult:
    """Run ``command`` in ``workdir`` after a success: ``result`` if it passes, else a failure."""
    proc = await run_process(
        ["/bin/sh", "-c", command],
        cwd=workdir,
        timeout_s=settings.verify_timeout_s,
        kill_grace_s=settings.kill_grace_s,
    )
    if proc.ok:
        result.details["verified"] = command
        return result
    tail = "\n".join((proc.stdout_tail + proc.stderr_tail)[-30:]).strip()
    error = f"verification `{command}` failed (exit {proc.exit_code}"
    error += ", timed out)" if proc.timed_out else ")"
    error += f": {tail}" if tail else ""
    failure = FailureType.TIMEOUT if proc.timed_out else FailureType.ERROR
    return ExecutionResult(
        ok=False,
        summary=error,
        error=error,
        failure_type=failure,
        duration_s=result.duration_s,
        details={"verify_failed": True},
    )
