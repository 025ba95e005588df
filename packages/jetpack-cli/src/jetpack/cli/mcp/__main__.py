"""``python -m jetpack.cli.mcp [--agent-id ID] [--project DIR]``: serve MCP on stdio.

The same server as ``jetpack mcp``, runnable without the CLI. Logs go to
stderr (stdout carries the protocol).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from jetpack.cli._common import check_edge_access
from jetpack.cli.mcp._server import AGENT_ID_ENV, PROJECT_DIR_ENV, serve_stdio
from jetpack.shared.config import load_config
from jetpack.shared.errors import JetpackError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the project config and serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m jetpack.cli.mcp", description=__doc__)
    parser.add_argument(
        "--agent-id",
        default=os.environ.get(AGENT_ID_ENV) or "mcp-agent",
        help=f"agent the tools act for (default: ${AGENT_ID_ENV} or mcp-agent)",
    )
    parser.add_argument(
        "--project",
        default=os.environ.get(PROJECT_DIR_ENV) or ".",
        help=f"project root (default: ${PROJECT_DIR_ENV} or the current directory)",
    )
    parser.add_argument("--log-level", default=os.environ.get("JETPACK_LOG_LEVEL", "WARNING"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.project)
        check_edge_access(config)
        asyncio.run(serve_stdio(config, args.agent_id))
    except JetpackError as exc:
        logging.getLogger("jetpack.cli.mcp").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
