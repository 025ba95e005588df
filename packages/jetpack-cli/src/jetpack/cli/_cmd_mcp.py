"""``jetpack mcp``: serve the project's stores as MCP tools on stdio."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from jetpack.cli._app import app
from jetpack.cli._common import check_edge_access, fail, project_dir
from jetpack.shared.config import load_config
from jetpack.shared.errors import JetpackError

__all__ = ["mcp"]


@app.command("mcp")
def mcp(
    agent_id: Annotated[
        str | None,
        typer.Option("--agent-id", help="Agent the tools act for (default: $JETPACK_AGENT_ID)."),
    ] = None,
) -> None:
    """Serve tasks, mail, leases and memory as MCP tools on stdio (for Claude Code and others).

    stdout carries the protocol; logs go to stderr. The project is ``--project``,
    or ``$JETPACK_PROJECT_DIR`` when the server is started by an agent. Edge
    stores use $JETPACK_API_TOKEN (an agent's own token when `jetpack start`
    runs it), else the token saved by `jetpack edge login`.
    """
    from jetpack.cli.mcp import AGENT_ID_ENV, PROJECT_DIR_ENV, serve_stdio  # SDK loads here

    root = Path(os.environ.get(PROJECT_DIR_ENV) or project_dir())
    agent = agent_id or os.environ.get(AGENT_ID_ENV) or "mcp-agent"
    logging.basicConfig(stream=sys.stderr, force=True, level=logging.WARNING)
    try:
        config = load_config(root)
        check_edge_access(config)
        asyncio.run(serve_stdio(config, agent))
    except JetpackError as exc:
        raise fail(exc.message, code=2) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
