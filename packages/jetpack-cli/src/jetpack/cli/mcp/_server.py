"""The MCP server: six tools over the project's task store, mail bus and memory store.

Built on the official SDK's low-level ``Server`` with hand-written schemas (no
generated ones), so the whole ``tools/list`` answer stays under 3.5 KB. Every
failure of a tool (bad argument, lost claim, held lease, store error) comes
back as a tool result with ``isError: true`` and the store's own message; the
server itself keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp.types as types
import pydantic
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from jetpack.cli.__about__ import __version__
from jetpack.cli.mcp._context import ToolContext
from jetpack.cli.mcp._schema import ToolSpec, advertised, check_args
from jetpack.cli.mcp._tools_mail import MAIL_TOOLS
from jetpack.cli.mcp._tools_memory import MEMORY_TOOLS
from jetpack.cli.mcp._tools_tasks import TASK_TOOLS
from jetpack.shared.config import JetpackConfig
from jetpack.shared.errors import (
    BackendNotInstalledError,
    ConflictError,
    JetpackError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from jetpack.shared.registry import Adapters, create_adapters

__all__ = [
    "AGENT_ID_ENV",
    "INSTRUCTIONS",
    "PROJECT_DIR_ENV",
    "SERVER_NAME",
    "TOOLS",
    "build_server",
    "error_text",
    "mcp_config_for",
    "serve_stdio",
]

logger = logging.getLogger(__name__)

SERVER_NAME = "jetpack"
"""The server's name: Claude Code shows its tools as ``mcp__jetpack__<tool>``."""

AGENT_ID_ENV = "JETPACK_AGENT_ID"
"""Environment variable naming the agent a server speaks for (``--agent-id`` wins)."""

PROJECT_DIR_ENV = "JETPACK_PROJECT_DIR"
"""Environment variable naming the project root (``--project`` wins; default: cwd)."""

TOOLS: list[ToolSpec] = [*TASK_TOOLS, *MAIL_TOOLS, *MEMORY_TOOLS]
"""Every tool, in listing order."""

INSTRUCTIONS = (
    "Jetpack coordinates you with other agents. Check `mail inbox` and `memory search` first; "
    "`lease reserve` files before editing them; report `task progress` while working; "
    "`memory store` what you learned; then `task complete` or `task fail`."
)
"""Sent once at initialisation; the per-tool descriptions stay one line each."""


def error_text(exc: BaseException) -> str:
    """The message an agent sees for a failed tool call: a kind, then the store's words."""
    if isinstance(exc, ValidationError):
        return f"invalid argument: {exc.message}"
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
        return f"invalid argument: {field}: {first.get('msg', 'invalid')}"
    if isinstance(exc, ConflictError):
        return f"conflict: {exc.message}"
    if isinstance(exc, NotFoundError):
        return f"not found: {exc.message}"
    if isinstance(exc, BackendNotInstalledError):
        return f"unavailable: {exc.message}"
    if isinstance(exc, UnavailableError):
        return f"unavailable (retry later): {exc.message}"
    if isinstance(exc, JetpackError):
        return f"error: {exc.message}"
    return f"internal error: {type(exc).__name__}: {exc}"


def _text(result: Any) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=str)


def _tool_list() -> list[types.Tool]:
    return [
        types.Tool(
            name=spec.name, description=spec.description, input_schema=advertised(spec.schema)
        )
        for spec in TOOLS
    ]


def build_server(adapters: Adapters, agent_id: str) -> Server[Any]:
    """The SDK server exposing ``adapters`` (already opened) as tools for ``agent_id``.

    The caller owns the adapters' lifetime; the server's lifespan only
    subscribes to broadcasts (for ``mail inbox``) and unsubscribes at the end.
    """
    context = ToolContext(adapters, agent_id)
    specs = {spec.name: spec for spec in TOOLS}
    tools = _tool_list()

    @asynccontextmanager
    async def lifespan(_: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        context.subscribe()
        try:
            yield {}
        finally:
            context.unsubscribe()

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        spec = specs.get(params.name)
        try:
            if spec is None:
                raise ValidationError("name", f"unknown tool {params.name!r}")
            args = check_args(spec.schema, params.arguments)
            await context.heartbeat()
            result = await spec.handler(context, args)
        except (JetpackError, pydantic.ValidationError) as exc:
            logger.info("tool %s for %s: %s", params.name, agent_id, exc)
            return _error(error_text(exc))
        except Exception as exc:
            logger.exception("tool %s for %s crashed", params.name, agent_id)
            return _error(error_text(exc))
        return types.CallToolResult(content=[types.TextContent(text=_text(result))])

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


async def serve_stdio(config: JetpackConfig, agent_id: str) -> None:
    """Open the project's stores for ``agent_id`` and serve MCP on stdin/stdout until EOF.

    The stores are the ones the rest of the CLI uses (local or edge, from
    ``config``), so this is safe beside a running ``jetpack start``: every
    write goes through the stores' own atomic operations.
    """
    async with create_adapters(config, agent_id=agent_id) as adapters:
        server = build_server(adapters, agent_id)
        logger.info("jetpack MCP server for %s on %s", agent_id, config.project_dir)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())


def mcp_config_for(
    agent_id: str, project_dir: Path, command: list[str], pass_env: Collection[str] = ()
) -> dict[str, Any]:
    """The JSON object for Claude Code's ``--mcp-config``: one ``jetpack`` server for one agent.

    ``command`` starts the server, e.g. ``["jetpack", "mcp"]`` or
    ``[sys.executable, "-m", "jetpack.cli.mcp"]``; ``--agent-id`` is appended,
    and the project root travels in :data:`PROJECT_DIR_ENV` (so the command
    needs no project flag). No secret is written: each name of ``pass_env``
    (``JETPACK_API_TOKEN``, ``JETPACK_MODE``…, set in the environment ``claude``
    starts with) is written as ``${NAME}``, which Claude Code fills in from its
    own environment when it starts the server.
    """
    if not command:
        raise ValidationError("command", "must name the program that starts the server")
    env = {name: f"${{{name}}}" for name in sorted(pass_env)}
    env[AGENT_ID_ENV] = agent_id
    env[PROJECT_DIR_ENV] = str(Path(os.path.abspath(project_dir)))
    return {
        "mcpServers": {
            SERVER_NAME: {
                "command": command[0],
                "args": [*command[1:], "--agent-id", agent_id],
                "env": env,
            }
        }
    }
