from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from jetpack.cli import (
    ClaudeCodeExecutor,
    CommandExecutor,
    DemoExecutor,
    ExecutionRequest,
    ProgressEvent,
)
from jetpack.cli._claude import ClaudeOptions, StreamJsonParser
from jetpack.cli._executors import ExecutorUnavailableError
from jetpack.shared import FailureType, Task, utcnow


def make_task(title: str = "Fix the bug", **extra: object) -> Task:
    now = utcnow()
    return Task.model_validate(
        {"id": "bd-test1", "title": title, "created_at": now, "updated_at": now, **extra}
    )


def request(
    tmp_path: Path, prompt: str, timeout_s: float = 20.0, **extra: object
) -> ExecutionRequest:
    return ExecutionRequest(
        task=make_task(),
        prompt=prompt,
        workdir=tmp_path,
        timeout_s=timeout_s,
        **extra,  # type: ignore[arg-type]
    )


# ----------------------------------------------------------------- the parser
def test_parser_folds_a_stream_into_a_result() -> None:
    parser = StreamJsonParser()
    lines = [
        {"type": "system", "subtype": "init", "session_id": "s-1", "model": "m", "tools": ["Bash"]},
        {
            "type": "assistant",
            "session_id": "s-1",
            "message": {
                "content": [
                    {"type": "text", "text": "hello"},
                    {"type": "tool_use", "name": "Bash", "input": {"command": "pytest -q"}},
                ]
            },
        },
        {"type": "user", "message": {"content": [{"type": "tool_result"}]}},
        {"type": "something_new", "x": 1},
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 4,
            "result": "ok",
            "session_id": "s-1",
            "total_cost_usd": 0.5,
        },
    ]
    events: list[ProgressEvent] = []
    for line in lines:
        events += parser.feed(json.dumps(line))
    kinds = [e.kind for e in events]
    assert kinds == ["init", "text", "tool", "tool_result", "raw", "result"]
    assert events[2].text == "Bash" and events[2].data["hint"] == "pytest -q"
    assert parser.session_id == "s-1" and parser.model == "m" and parser.tools == ["Bash"]
    assert parser.is_error is False and parser.turns == 4 and parser.cost_usd == 0.5
    assert parser.raw_types == {"something_new": 1}


def test_parser_skips_garbage_and_accepts_old_field_names() -> None:
    parser = StreamJsonParser()
    assert parser.feed("not json at all") == []
    assert parser.feed("[1, 2, 3]") == []
    assert parser.feed("") == []
    parser.feed(
        json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "sessionId": "old",
                "cost_usd": 0.25,
            }
        )
    )
    assert parser.garbage_lines == 2
    assert parser.session_id == "old" and parser.cost_usd == 0.25


def test_parser_without_result_has_no_verdict() -> None:
    parser = StreamJsonParser()
    parser.feed(json.dumps({"type": "system", "subtype": "init"}))
    assert parser.is_error is None and parser.cost_usd is None and parser.turns is None


def test_claude_options_build_the_documented_flags() -> None:
    argv = ClaudeOptions(
        model="sonnet",
        allowed_tools=("Edit", "Bash(git *)"),
        max_turns=5,
        mcp_config="mcp.json",
        extra_args=("--bare",),
    ).argv()
    assert argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert argv[argv.index("--allowedTools") + 1] == "Edit,Bash(git *)"
    assert argv[argv.index("--max-turns") + 1] == "5"
    assert argv[argv.index("--mcp-config") + 1] == "mcp.json"
    assert argv[-1] == "--bare"


# ------------------------------------------------------ claude, for real (fake)
async def test_claude_success(fake_claude: Path, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    result = await ClaudeCodeExecutor().execute(
        request(tmp_path, "do it fake:success"), events.append
    )
    assert result.ok, result.error
    assert result.exit_code == 0 and result.turns == 2 and result.cost_usd == 0.0123
    assert result.session_id and result.summary == "Changed src/app.py; tests pass."
    assert {"init", "text", "tool", "tool_result", "raw", "result"} <= {e.kind for e in events}
    assert result.as_result()["session_id"] == result.session_id


@pytest.mark.parametrize(
    ("marker", "needle", "exit_code"),
    [
        ("fake:is_error", "error_during_execution: API Error: overloaded", 1),
        ("fake:max_turns", "error_max_turns", 0),
        ("fake:crash", "exited with code 3: Error: fake crash", 3),
        ("fake:garbage", "without a result line (4 unparseable output lines)", 0),
    ],
)
async def test_claude_failures(
    fake_claude: Path, tmp_path: Path, marker: str, needle: str, exit_code: int
) -> None:
    result = await ClaudeCodeExecutor().execute(request(tmp_path, marker))
    assert not result.ok
    assert result.failure_type is FailureType.ERROR
    assert needle in (result.error or ""), result.error
    assert result.exit_code == exit_code


async def test_not_logged_in_is_a_run_error_with_the_fix(fake_claude: Path, tmp_path: Path) -> None:
    result = await ClaudeCodeExecutor().execute(request(tmp_path, "fake:auth"))
    assert not result.ok and result.exit_code == 1
    assert result.fatal is not None and "ANTHROPIC_API_KEY" in result.fatal
    assert "Not logged in" in result.fatal
    # claude says subtype "success" with is_error true: the message never says success
    assert "success" not in (result.error or "") and "authentication_failed" in (result.error or "")


async def test_a_refused_flag_is_a_run_error(fake_claude: Path, tmp_path: Path) -> None:
    executor = ClaudeCodeExecutor(ClaudeOptions(extra_args=("--no-such-flag",)))
    result = await executor.execute(request(tmp_path, "fake:success"))
    assert not result.ok
    assert result.fatal is not None and "unknown option '--no-such-flag'" in result.fatal


@pytest.mark.parametrize("marker", ["fake:is_error", "fake:crash", "fake:garbage"])
async def test_task_failures_are_not_run_errors(
    fake_claude: Path, tmp_path: Path, marker: str
) -> None:
    result = await ClaudeCodeExecutor().execute(request(tmp_path, marker))
    assert not result.ok and result.fatal is None


async def test_claude_preflight(fake_claude: Path, tmp_path: Path) -> None:
    await ClaudeCodeExecutor().preflight([])  # `claude --version` runs
    missing = ClaudeCodeExecutor(ClaudeOptions(command=str(tmp_path / "nope")))
    with pytest.raises(ExecutorUnavailableError, match="npm install -g @anthropic-ai/claude-code"):
        await missing.preflight([])
    broken = tmp_path / "broken-claude"
    broken.write_text("#!/bin/sh\necho 'cannot load' >&2\nexit 7\n")
    broken.chmod(0o755)
    with pytest.raises(ExecutorUnavailableError, match=r"exit 7.*cannot load"):
        await ClaudeCodeExecutor(ClaudeOptions(command=str(broken))).preflight([])


async def test_command_preflight() -> None:
    own = make_task(metadata={"command": "true"})
    bare = make_task()
    await CommandExecutor().preflight([own])
    with pytest.raises(ExecutorUnavailableError, match="jetpack start --command CMD"):
        await CommandExecutor().preflight([own, bare])
    await CommandExecutor("exit 0").preflight([own, bare])  # a shell builtin is found
    with pytest.raises(ExecutorUnavailableError, match="'no-such-tool-jetpack'"):
        await CommandExecutor("no-such-tool-jetpack --fast").preflight([bare])


async def test_claude_missing_binary(tmp_path: Path) -> None:
    executor = ClaudeCodeExecutor(ClaudeOptions(command=str(tmp_path / "nope")))
    result = await executor.execute(request(tmp_path, "x"))
    assert not result.ok and "could not start claude" in (result.error or "")


@pytest.mark.parametrize("marker", ["fake:hang", "fake:stubborn"])
async def test_claude_hang_past_timeout_kills_the_process_group(
    fake_claude: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str, alive
) -> None:
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_CLAUDE_PIDS", str(pids_file))
    started = time.monotonic()
    result = await ClaudeCodeExecutor(kill_grace_s=0.5).execute(
        request(tmp_path, marker, timeout_s=1.5)
    )
    assert not result.ok and result.failure_type is FailureType.TIMEOUT
    assert "timed out" in (result.error or "")
    assert time.monotonic() - started < 8
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 2
    assert not any(alive(p) for p in pids), "a process of the group survived"


async def test_claude_silence_is_stalled(
    fake_claude: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alive
) -> None:
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_CLAUDE_PIDS", str(pids_file))
    result = await ClaudeCodeExecutor(kill_grace_s=0.5).execute(
        request(tmp_path, "fake:hang", timeout_s=30, idle_timeout_s=1.0)
    )
    assert result.failure_type is FailureType.STALLED
    assert not any(alive(int(p)) for p in pids_file.read_text().split())


async def test_cancelling_an_attempt_kills_the_group(
    fake_claude: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alive
) -> None:
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_CLAUDE_PIDS", str(pids_file))
    run = asyncio.create_task(
        ClaudeCodeExecutor(kill_grace_s=0.5).execute(request(tmp_path, "fake:hang", timeout_s=60))
    )
    for _ in range(100):
        if pids_file.exists() and pids_file.read_text().strip():
            break
        await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not any(alive(int(p)) for p in pids_file.read_text().split())


# ---------------------------------------------------------- command and demo
async def test_command_executor(tmp_path: Path) -> None:
    executor = CommandExecutor()
    ok = await executor.execute(
        ExecutionRequest(
            task=make_task(
                metadata={"command": "echo $JETPACK_TASK_ID; test -f $JETPACK_PROMPT_FILE"}
            ),
            prompt="p",
            workdir=tmp_path,
            timeout_s=10,
        )
    )
    assert ok.ok and ok.summary == "bd-test1"
    bad = await executor.execute(
        ExecutionRequest(
            task=make_task(metadata={"command": "echo boom >&2; exit 4"}),
            prompt="p",
            workdir=tmp_path,
            timeout_s=10,
        )
    )
    assert not bad.ok and bad.exit_code == 4 and "boom" in (bad.error or "")
    none = await executor.execute(
        ExecutionRequest(task=make_task(), prompt="p", workdir=tmp_path, timeout_s=10)
    )
    assert not none.ok and "metadata.command" in (none.error or "")


async def test_an_attempt_never_sees_the_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JETPACK_ADMIN_TOKEN", "jp_admin_secret")
    monkeypatch.setenv("JETPACK_SOMETHING_ELSE", "kept")
    script = (
        'echo "admin=${JETPACK_ADMIN_TOKEN:-none} other=$JETPACK_SOMETHING_ELSE'
        ' api=$JETPACK_API_TOKEN"'
    )
    result = await CommandExecutor().execute(
        ExecutionRequest(
            task=make_task(metadata={"command": script}),
            prompt="p",
            workdir=tmp_path,
            timeout_s=10,
            env={"JETPACK_API_TOKEN": "jp_agent_token"},
        )
    )
    assert result.ok, result.error
    assert result.summary == "admin=none other=kept api=jp_agent_token"


async def test_command_timeout_kills_background_children(tmp_path: Path, alive) -> None:
    pid_file = tmp_path / "bg.pid"
    executor = CommandExecutor(kill_grace_s=0.5)
    result = await executor.execute(
        ExecutionRequest(
            task=make_task(metadata={"command": f"sleep 100 & echo $! > {pid_file}; wait"}),
            prompt="p",
            workdir=tmp_path,
            timeout_s=1.0,
        )
    )
    assert result.failure_type is FailureType.TIMEOUT
    assert not alive(int(pid_file.read_text()))


async def test_demo_executor_is_deterministic(tmp_path: Path) -> None:
    executor = DemoExecutor(base_s=0.01, jitter_s=0.02)
    task = make_task()
    assert executor.duration_for(task) == executor.duration_for(make_task())
    result = await executor.execute(
        ExecutionRequest(task=task, prompt="", workdir=tmp_path, timeout_s=5)
    )
    assert result.ok and (tmp_path / ".jetpack" / "demo" / "bd-test1.txt").exists()
    flaky = make_task(metadata={"demo": {"fail_times": 1, "seconds": 0.01}})
    first = await executor.execute(
        ExecutionRequest(task=flaky, prompt="", workdir=tmp_path, timeout_s=5)
    )
    assert not first.ok and "planned" in (first.error or "")
    retried = flaky.model_copy(update={"retry_count": 1})
    assert (
        await executor.execute(
            ExecutionRequest(task=retried, prompt="", workdir=tmp_path, timeout_s=5)
        )
    ).ok
