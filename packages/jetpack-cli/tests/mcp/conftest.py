"""Fixtures of the MCP server tests: a project folder, server env, real stdio clients.

The servers run as real OS processes (``python -m jetpack.cli.mcp``) on the
local backends found through the ``jetpack.backends`` entry points. While no
``memory.local`` backend is installed, the server processes get a stand-in
one (the kit's in-memory store) through a throw-away ``.dist-info`` on their
``PYTHONPATH``; once jetpack-cass registers the real one, it is used instead.
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

from jetpack.shared.registry import discover_backends

_STAND_IN = """
from jetpack.shared.testing import InMemoryMemoryStore


class Memory(InMemoryMemoryStore):
    @classmethod
    def from_config(cls, config, *, agent_id):
        return cls()
"""


def _stand_in_site(root: Path) -> Path:
    site = root / "site"
    dist = site / "jetpack_mcp_test_memory-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: jetpack-mcp-test-memory\nVersion: 0.0.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[jetpack.backends]\nmemory.local = jetpack_mcp_test_memory:Memory\n"
    )
    (site / "jetpack_mcp_test_memory.py").write_text(_STAND_IN)
    return site


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project root (the local stores create their files on first open)."""
    root = tmp_path / "proj"
    root.mkdir()
    return root


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    """Environment for server processes: the real one plus a memory stand-in if needed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}
    if "memory.local" not in {b.name for b in discover_backends()}:
        site = _stand_in_site(tmp_path)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


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
