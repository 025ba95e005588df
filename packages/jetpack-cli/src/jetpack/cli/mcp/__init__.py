"""``jetpack mcp``: the project's stores as MCP tools for coding agents.

Six tools with tight, hand-written schemas (``tasks``, ``task_new``, ``task``,
``mail``, ``lease``, ``memory``) over the same task store, mail bus and memory
store the rest of the CLI uses::

    from jetpack.cli.mcp import serve_stdio
    from jetpack.shared.config import load_config

    asyncio.run(serve_stdio(load_config("."), "agent-1"))

:func:`mcp_config_for` writes the ``--mcp-config`` object that gives each
Claude Code agent this server under its own agent id.
"""

from jetpack.cli.mcp._schema import ToolSpec, check_args
from jetpack.cli.mcp._server import (
    AGENT_ID_ENV,
    INSTRUCTIONS,
    PROJECT_DIR_ENV,
    SERVER_NAME,
    TOOLS,
    build_server,
    error_text,
    mcp_config_for,
    serve_stdio,
)

__all__ = [
    "AGENT_ID_ENV",
    "INSTRUCTIONS",
    "PROJECT_DIR_ENV",
    "SERVER_NAME",
    "TOOLS",
    "ToolSpec",
    "build_server",
    "check_args",
    "error_text",
    "mcp_config_for",
    "serve_stdio",
]
