"""The whole command tree: the root app with every sub-command registered."""

from __future__ import annotations

import sys

from jetpack.cli import _cmd_edge, _cmd_mcp, _cmd_run, _cmd_stores, _cmd_tasks
from jetpack.cli._app import app
from jetpack.cli._common import error_line, install_hint
from jetpack.shared.errors import BackendNotInstalledError, JetpackError

__all__ = ["app", "main"]

_COMMAND_MODULES = (_cmd_edge, _cmd_mcp, _cmd_run, _cmd_stores, _cmd_tasks)


def main() -> None:
    """Entry point of the ``jetpack`` console script: errors are one line, never a traceback."""
    try:
        app()
    except BackendNotInstalledError as exc:
        error_line(install_hint(exc))
        sys.exit(1)
    except JetpackError as exc:
        error_line(exc.message)
        sys.exit(1)
    except OSError as exc:  # a read-only or missing project directory, a full disk...
        where = f": {exc.filename}" if exc.filename else ""
        error_line(f"{exc.strerror or exc}{where}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
