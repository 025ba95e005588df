"""The whole command tree: the root app with every sub-command registered."""

from __future__ import annotations

from jetpack.cli import _cmd_edge, _cmd_mcp, _cmd_run, _cmd_stores, _cmd_tasks
from jetpack.cli._app import app

__all__ = ["app", "main"]

_COMMAND_MODULES = (_cmd_edge, _cmd_mcp, _cmd_run, _cmd_stores, _cmd_tasks)


def main() -> None:
    """Entry point of the ``jetpack`` console script."""
    app()
