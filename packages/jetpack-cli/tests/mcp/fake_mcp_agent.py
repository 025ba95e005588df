"""A stand-in agent: read a ``--mcp-config``, start the server it names, call one tool.

Usage::

    python fake_mcp_agent.py --mcp-config FILE_OR_JSON [--server jetpack]
                             [--tool tasks] [--args '{"action": "ready"}']

It starts the server the way Claude Code does (the config's ``command`` and
``args``, our environment with the config's ``env`` on top), talks to it with
the SDK's stdio client, and prints one JSON line:
``{"tool": ..., "is_error": ..., "text": ...}``. Exit status 0 when the call
succeeded, 1 when the tool returned an error, 2 when the server could not be
reached. :func:`call_tool_via_config` is the part to fold into a fake ``claude``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client


def expand(value: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from our environment, as Claude Code expands them."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if default is None:
            return os.environ.get(name, match.group(0))  # unset: left as written
        return os.environ.get(name) or default

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", one, value)


def load_mcp_config(value: str) -> dict[str, Any]:
    """Claude Code accepts a file path or the JSON text itself."""
    text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise ValueError("an MCP config needs an 'mcpServers' object")
    return data


async def call_tool_via_config(
    config: dict[str, Any], tool: str, arguments: dict[str, Any], server: str = "jetpack"
) -> tuple[bool, str]:
    """Start ``server`` from ``config``, call ``tool``; return (is_error, text)."""
    entry = config["mcpServers"][server]
    params = StdioServerParameters(
        command=entry["command"],
        args=list(entry.get("args", [])),
        env={**os.environ, **{k: expand(v) for k, v in entry.get("env", {}).items()}},
    )
    async with Client(stdio_client(params, errlog=sys.stderr), mode="legacy") as client:
        result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    return result.is_error, text


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, make the call, print the result line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcp-config", required=True)
    parser.add_argument("--server", default="jetpack")
    parser.add_argument("--tool", default="tasks")
    parser.add_argument("--args", default='{"action": "ready"}')
    opts = parser.parse_args(argv)
    try:
        config = load_mcp_config(opts.mcp_config)
        is_error, text = asyncio.run(
            call_tool_via_config(config, opts.tool, json.loads(opts.args), opts.server)
        )
    except Exception as exc:
        sys.stderr.write(f"fake agent: {type(exc).__name__}: {exc}\n")
        return 2
    sys.stdout.write(json.dumps({"tool": opts.tool, "is_error": is_error, "text": text}) + "\n")
    return 1 if is_error else 0


if __name__ == "__main__":
    sys.exit(main())
