"""The Claude Code executor: ``claude -p --output-format stream-json --verbose``.

The prompt goes on stdin (one argv string is limited to 128 KiB on Linux, and a
task description may be longer). Standard output is newline-delimited JSON; the
parser is line-oriented and tolerant: a line that is not JSON is counted and
skipped, unknown ``type`` values are kept as raw events. Success needs a
``result`` line with ``is_error: false`` AND exit code 0 (the original counted
exit code 0 alone).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetpack.cli._executors import (
    ExecutionRequest,
    ExecutionResult,
    ExecutorUnavailableError,
    ProgressEvent,
    ProgressHandler,
    child_env,
    failure_from_process,
)
from jetpack.cli._process import run_process
from jetpack.shared import FailureType, Task
from jetpack.shared.config import ENV_VARS

__all__ = ["RUN_ERRORS", "ClaudeCodeExecutor", "ClaudeOptions", "StreamJsonParser"]

logger = logging.getLogger(__name__)

LOGIN_FIX = "log in with `claude` (then /login), or set ANTHROPIC_API_KEY"
RUN_ERRORS: dict[str, str] = {
    "authentication_failed": f"claude is not logged in or its key was refused: {LOGIN_FIX}",
    "oauth_org_not_allowed": f"claude's login is not allowed for this organisation: {LOGIN_FIX}",
    "billing_error": "claude's account has a billing problem: check its plan or credits",
    "model_not_found": "claude does not know the model: check `claude.model` in "
    ".jetpack/config.toml",
}
"""``error`` values of claude's stream-json that no task can get past: the run stops."""

_USAGE = re.compile(
    r"^(error: (unknown option|option '|missing required|too many)|Error: When using)"
)
"""claude's own command-line errors (commander.js), printed on stderr before any JSON."""


@dataclass(slots=True)
class StreamJsonParser:
    """Folds ``stream-json`` lines into progress events and a final result."""

    session_id: str | None = None
    model: str | None = None
    tools: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    garbage_lines: int = 0
    events: int = 0
    last_text: str = ""
    raw_types: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    """The ``error`` of an assistant or result line (``authentication_failed``...)."""

    def feed(self, line: str) -> list[ProgressEvent]:
        """Parse one line; return the progress events it carries (possibly none)."""
        line = line.strip()
        if not line:
            return []
        try:
            data = json.loads(line)
        except ValueError:
            self.garbage_lines += 1
            logger.debug("claude: skipped a non-JSON line: %.200s", line)
            return []
        if not isinstance(data, dict):
            self.garbage_lines += 1
            return []
        self.events += 1
        kind = data.get("type")
        session = data.get("session_id", data.get("sessionId"))
        if isinstance(session, str) and session:
            self.session_id = session
        if kind in ("assistant", "result") and isinstance(data.get("error"), str):
            self.error = data["error"]
        if kind == "system":
            return self._system(data)
        if kind == "assistant":
            return self._assistant(data)
        if kind == "user":
            return [ProgressEvent("tool_result", "")]
        if kind == "result":
            self.result = data
            return [ProgressEvent("result", str(data.get("subtype", "")))]
        name = str(kind)
        self.raw_types[name] = self.raw_types.get(name, 0) + 1
        return [ProgressEvent("raw", name, data)]

    def _system(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        if data.get("subtype") == "init":
            model = data.get("model")
            self.model = model if isinstance(model, str) else None
            tools = data.get("tools")
            if isinstance(tools, list):
                self.tools = [str(t) for t in tools]
            return [ProgressEvent("init", self.model or "", {"session_id": self.session_id})]
        return [ProgressEvent("system", str(data.get("subtype", "")))]

    def _assistant(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        message = data.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        events: list[ProgressEvent] = []
        if not isinstance(content, list):
            return events
        for block in content:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                self.last_text = block["text"]
                events.append(ProgressEvent("text", block["text"][:300]))
            elif block.get("type") == "tool_use":
                tool_input = block.get("input")
                hint = ""
                if isinstance(tool_input, Mapping):
                    for key in ("file_path", "path", "command", "pattern"):
                        if isinstance(tool_input.get(key), str):
                            hint = tool_input[key][:200]
                            break
                events.append(ProgressEvent("tool", str(block.get("name", "?")), {"hint": hint}))
        return events

    @property
    def is_error(self) -> bool | None:
        """The result line's verdict; None when no result line was seen."""
        if self.result is None:
            return None
        return bool(self.result.get("is_error", self.result.get("subtype") != "success"))

    @property
    def cost_usd(self) -> float | None:
        """``total_cost_usd`` (or the older ``cost_usd``) of the result line."""
        if self.result is None:
            return None
        value = self.result.get("total_cost_usd", self.result.get("cost_usd"))
        return float(value) if isinstance(value, int | float) else None

    @property
    def turns(self) -> int | None:
        """``num_turns`` of the result line."""
        value = (self.result or {}).get("num_turns")
        return int(value) if isinstance(value, int) else None


def _mcp_tools() -> str:
    """Claude Code's permission name for every tool of the jetpack MCP server."""
    from jetpack.cli.mcp import SERVER_NAME  # the MCP SDK loads only when used

    return f"mcp__{SERVER_NAME}"


@dataclass(frozen=True, slots=True)
class ClaudeOptions:
    """Flags for ``claude`` (the ``[claude]`` table of the config)."""

    command: str = "claude"
    model: str | None = None
    permission_mode: str | None = "acceptEdits"
    """One of acceptEdits, auto, bypassPermissions, default, dontAsk, plan."""
    allowed_tools: Sequence[str] = ()
    disallowed_tools: Sequence[str] = ()
    max_turns: int | None = None
    max_budget_usd: float | None = None
    mcp_config: str | None = None
    append_system_prompt: str | None = None
    extra_args: Sequence[str] = ()
    jetpack_mcp: bool = True
    """Give each agent the ``jetpack mcp`` server under its own agent id."""

    def argv(self, jetpack_mcp_config: str | None = None) -> list[str]:
        """The command line (the prompt itself goes on stdin).

        ``jetpack_mcp_config`` is the per-agent file written by the executor; its
        tools (``mcp__jetpack__*``) are allowed along with ``allowed_tools``.
        """
        args = [self.command, "-p", "--output-format", "stream-json", "--verbose"]
        if self.model:
            args += ["--model", self.model]
        if self.permission_mode:
            args += ["--permission-mode", self.permission_mode]
        allowed = [*self.allowed_tools, *([_mcp_tools()] if jetpack_mcp_config else [])]
        if allowed:
            args += ["--allowedTools", ",".join(allowed)]
        if self.disallowed_tools:
            args += ["--disallowedTools", ",".join(self.disallowed_tools)]
        if self.max_turns is not None:
            args += ["--max-turns", str(self.max_turns)]
        if self.max_budget_usd is not None:
            args += ["--max-budget-usd", str(self.max_budget_usd)]
        configs = [c for c in (self.mcp_config, jetpack_mcp_config) if c]
        if configs:
            args += ["--mcp-config", *configs]
        if self.append_system_prompt:
            args += ["--append-system-prompt", self.append_system_prompt]
        return [*args, *self.extra_args]


class ClaudeCodeExecutor:
    """Runs Claude Code headless on one task and reads its stream-json output."""

    name = "claude"

    def __init__(
        self,
        options: ClaudeOptions | None = None,
        *,
        kill_grace_s: float = 5.0,
        project_dir: Path | None = None,
    ) -> None:
        self.options = options or ClaudeOptions()
        self.kill_grace_s = kill_grace_s
        self.project_dir = project_dir
        """Project whose stores the agent's MCP server opens (None: no jetpack MCP server)."""

    @property
    def mcp_tools(self) -> bool:
        """True when agents get the jetpack MCP tools (the prompt then explains them)."""
        return self.options.jetpack_mcp and self.project_dir is not None

    async def preflight(self, tasks: Sequence[Task]) -> None:
        """Check that ``claude --version`` runs, once, before anything is claimed."""
        command = self.options.command
        proc = await run_process([command, "--version"], timeout_s=60, kill_grace_s=1.0)
        if proc.spawn_error:
            raise ExecutorUnavailableError(
                f"the claude executor cannot start {command!r} ({proc.spawn_error}); install "
                "Claude Code (npm install -g @anthropic-ai/claude-code) or set `claude.command` "
                "in .jetpack/config.toml"
            )
        if not proc.ok:
            tail = " ".join((proc.stderr_tail or proc.stdout_tail)[-3:]).strip()
            raise ExecutorUnavailableError(
                f"`{command} --version` failed (exit {proc.exit_code}"
                f"{', timed out' if proc.timed_out else ''}){': ' + tail if tail else ''}"
            )
        logger.info("claude: %s", " ".join(proc.stdout_tail[-1:]))

    def _write_mcp_config(self, agent_id: str, env: Mapping[str, str]) -> str | None:
        """Write ``.jetpack/mcp/<agent>.json`` for ``--mcp-config``; return its path.

        The ``JETPACK_*`` config variables set in ``env`` (claude's environment:
        the agent's token, the mode…) are passed to the server by name, never
        written.
        """
        if not self.mcp_tools or self.project_dir is None:
            return None
        from jetpack.cli.mcp import mcp_config_for  # the MCP SDK loads only when used

        config = mcp_config_for(
            agent_id,
            self.project_dir,
            [sys.executable, "-m", "jetpack.cli.mcp"],
            pass_env=[name for name in ENV_VARS if env.get(name)],
        )
        target = self.project_dir / ".jetpack" / "mcp" / f"{agent_id}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return str(target)

    async def execute(
        self, request: ExecutionRequest, on_progress: ProgressHandler | None = None
    ) -> ExecutionResult:
        """Run ``claude`` with the prompt on stdin; kill its process group on timeout."""
        parser = StreamJsonParser()

        def line(text: str) -> None:
            for event in parser.feed(text):
                if on_progress is not None:
                    on_progress(event)

        env = child_env(request, FORCE_COLOR="0", JETPACK_TASK_ID=request.task.id)
        mcp_file = await asyncio.to_thread(self._write_mcp_config, request.agent_id, env)
        proc = await run_process(
            self.options.argv(mcp_file),
            cwd=request.workdir,
            env=env,
            stdin_data=request.prompt.encode("utf-8"),
            timeout_s=request.timeout_s,
            idle_timeout_s=request.idle_timeout_s,
            on_stdout=line,
            kill_grace_s=self.kill_grace_s,
        )
        details: dict[str, Any] = {
            "events": parser.events,
            "garbage_lines": parser.garbage_lines,
            "model": parser.model,
        }
        common: dict[str, Any] = {
            "exit_code": proc.exit_code,
            "duration_s": proc.duration_s,
            "turns": parser.turns,
            "cost_usd": parser.cost_usd,
            "session_id": parser.session_id,
            "details": details,
        }
        text = str((parser.result or {}).get("result") or parser.last_text or "").strip()
        if proc.ok and parser.is_error is False:
            return ExecutionResult(ok=True, summary=text[:4000] or "done", **common)
        failure = FailureType.ERROR
        fatal = _run_error(parser, proc.stderr_tail, proc.exit_code, text)
        if proc.spawn_error or proc.timed_out or proc.stalled or proc.cancelled:
            error, failure = failure_from_process(proc, "claude")
        elif parser.result is not None:
            subtype = str(parser.result.get("subtype") or "error")
            what = "an error" if subtype == "success" else subtype  # is_error with "success"
            if parser.error:
                what += f" ({parser.error})"
            error = f"claude reported {what}: {text[:1000] or 'no details'}"
            if proc.exit_code != 0:
                error += f" (exit code {proc.exit_code})"
        elif proc.exit_code == 0:
            error = "claude exited 0 without a result line"
        else:
            error, failure = failure_from_process(proc, "claude")
        if parser.result is None and parser.garbage_lines:
            error += f" ({parser.garbage_lines} unparseable output lines)"
        return ExecutionResult(
            ok=False, summary=error, error=error, failure_type=failure, fatal=fatal, **common
        )


def _run_error(
    parser: StreamJsonParser, stderr: Sequence[str], exit_code: int | None, text: str
) -> str | None:
    """What makes every task fail the same way (login, billing, flags), with the fix; or None."""
    if parser.error in RUN_ERRORS:
        said = f" (claude said: {text[:200]})" if text else ""
        return f"{RUN_ERRORS[parser.error]}{said}"
    if parser.events == 0 and exit_code not in (0, None):
        usage = next((line for line in stderr if _USAGE.match(line.strip())), None)
        if usage is not None:
            return (
                f"claude refused its command line: {usage.strip()[:300]}; "
                "check the [claude] table of .jetpack/config.toml"
            )
    return None
