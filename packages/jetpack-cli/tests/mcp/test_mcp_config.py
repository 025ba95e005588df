"""``mcp_config_for`` and the fake agent that follows it end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jetpack.cli.mcp import AGENT_ID_ENV, PROJECT_DIR_ENV, mcp_config_for
from jetpack.shared.config import load_config
from jetpack.shared.errors import ValidationError
from jetpack.shared.registry import create_store

FAKE_AGENT = Path(__file__).with_name("fake_mcp_agent.py")
SERVER = [sys.executable, "-m", "jetpack.cli.mcp"]


def test_config_shape(tmp_path: Path) -> None:
    config = mcp_config_for("agent-3", tmp_path, ["jetpack", "mcp"])
    assert config == {
        "mcpServers": {
            "jetpack": {
                "command": "jetpack",
                "args": ["mcp", "--agent-id", "agent-3"],
                "env": {AGENT_ID_ENV: "agent-3", PROJECT_DIR_ENV: str(tmp_path)},
            }
        }
    }
    json.dumps(config)  # plain JSON


def test_config_makes_the_project_dir_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = mcp_config_for("a", Path("proj"), SERVER)["mcpServers"]["jetpack"]["env"]
    assert env[PROJECT_DIR_ENV] == str(tmp_path / "proj")


def test_config_needs_a_command(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="command"):
        mcp_config_for("a", tmp_path, [])


def run_agent(config: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FAKE_AGENT), "--mcp-config", str(config), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_fake_agent_calls_a_tool_through_the_config(
    project: Path, server_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps(mcp_config_for("agent-7", project, SERVER)))
    create = run_agent(
        config, server_env, "--tool", "task_new", "--args", '{"title": "from the fake agent"}'
    )
    assert create.returncode == 0, create.stderr
    line = json.loads(create.stdout)
    assert line["tool"] == "task_new" and line["is_error"] is False
    task_id = json.loads(line["text"])["id"]

    claim = run_agent(
        config, server_env, "--tool", "task", "--args", json.dumps({"action": "claim"})
    )
    assert claim.returncode == 0, claim.stderr
    assert json.loads(json.loads(claim.stdout)["text"])["assigned_agent"] == "agent-7"

    refused = run_agent(config, server_env, "--tool", "task", "--args", '{"action": "fly"}')
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["text"].startswith("invalid argument: action")

    async def check() -> Any:
        async with create_store(load_config(project), "tasks") as tasks:
            return await tasks.get_task(task_id)

    task = asyncio.run(check())
    assert task is not None and task.assigned_agent == "agent-7"


def test_fake_agent_accepts_inline_json(project: Path, server_env: dict[str, str]) -> None:
    inline = json.dumps(mcp_config_for("agent-8", project, SERVER))
    result = subprocess.run(
        [sys.executable, str(FAKE_AGENT), "--mcp-config", inline],
        capture_output=True,
        text=True,
        env=server_env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"tool": "tasks", "is_error": False, "text": "[]"}


def test_server_exits_cleanly_when_stdin_closes(project: Path, server_env: dict[str, str]) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    proc = subprocess.run(
        [*SERVER, "--agent-id", "raw", "--project", str(project)],
        input=json.dumps(init) + "\n",
        capture_output=True,
        text=True,
        env=server_env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout.splitlines()[0])
    assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "jetpack"
    assert "lease reserve" in reply["result"]["instructions"]


def test_server_without_a_backend_fails_fast(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}
    env["JETPACK_TASKS_BACKEND"] = "cloudflare"
    env["PYTHONPATH"] = ""
    proc = subprocess.run(
        [*SERVER, "--project", str(project)],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    # No edge backend installed: "pip install jetpack-cf-beads"; installed but
    # unconfigured: its own config error. Either way one clear line, exit 2.
    assert proc.returncode == 2, proc.stderr
    assert "ERROR jetpack.cli.mcp:" in proc.stderr
    assert "Traceback" not in proc.stderr
