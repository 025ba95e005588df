"""Fixtures of the MCP server tests: a project folder, server env, real stdio clients.

The servers run as real OS processes (``python -m jetpack.cli.mcp``) on the
local backends found through the ``jetpack.backends`` entry points (jetpack-beads,
jetpack-mcp-mail, jetpack-cass): no stand-ins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project root (the local stores create their files on first open)."""
    root = tmp_path / "proj"
    root.mkdir()
    return root


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    """Environment for server processes: ours, without any JETPACK_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}


Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(project: Path, server_env: dict[str, str], tmp_path: Path) -> Connect:
    """``async with connect("agent-1") as client``: a server process for that agent."""

    @asynccontextmanager
    async def _connect(agent_id: str, *, mode: str = "legacy", **kw: Any) -> AsyncIterator[Client]:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "jetpack.cli.mcp", "--agent-id", agent_id, "--project", str(project)],
            env=server_env,
        )
        log = tmp_path / f"server-{agent_id}.log"
        with log.open("a") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode=mode, **kw) as client:
                yield client

    return _connect
