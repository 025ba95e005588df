"""What every command shares: the project directory, the stores, the console, error exits."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from jetpack.shared import MailBus, MemoryStore, TaskStore
from jetpack.shared.config import CONFIG_FILE, JetpackConfig, load_config
from jetpack.shared.errors import BackendNotInstalledError, JetpackError
from jetpack.shared.registry import Adapters, create_adapters, create_store

__all__ = [
    "console",
    "err_console",
    "error_line",
    "fail",
    "open_adapters",
    "project_config",
    "project_dir",
    "run_async",
    "state",
]

P = ParamSpec("P")
R = TypeVar("R")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
logger = logging.getLogger("jetpack.cli")


class _State:
    """Global options, set by the root callback."""

    project: Path = Path(".")
    verbose: int = 0


state = _State()


def project_dir() -> Path:
    """The project root given by ``--project`` (default: the current directory)."""
    return state.project.resolve()


def project_config(*, require_init: bool = True) -> JetpackConfig:
    """Load the project's config; refuse an un-initialised project unless told not to."""
    root = project_dir()
    if require_init and not (root / CONFIG_FILE).exists():
        fail(f"{root} is not a Jetpack project (no {CONFIG_FILE}); run `jetpack init` first")
    return load_config(root)


def open_adapters(config: JetpackConfig, agent_id: str = "cli") -> Adapters:
    """The project's three stores, from the installed backends."""
    return create_adapters(config, agent_id=agent_id)


def open_tasks(config: JetpackConfig) -> TaskStore:
    """Only the task store (commands that need one store open one store)."""
    store: TaskStore = create_store(config, "tasks")
    return store


def open_mail(config: JetpackConfig, agent_id: str = "cli") -> MailBus:
    """Only the mail bus, speaking for ``agent_id``."""
    bus: MailBus = create_store(config, "mail", agent_id=agent_id)
    return bus


def open_memory(config: JetpackConfig) -> MemoryStore:
    """Only the memory store (opening it may load the embedding model)."""
    store: MemoryStore = create_store(config, "memory")
    return store


def error_line(message: str) -> None:
    """Print ``error: message`` on stderr."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error and exit with ``code``."""
    error_line(message)
    raise typer.Exit(code)


def run_async(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """Run an async command body; Jetpack errors become one red line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return asyncio.run(func(*args, **kwargs))
        except BackendNotInstalledError as exc:
            raise fail(f"{exc.message}\n  (or: pip install 'jetpack-cli[local]')") from exc
        except JetpackError as exc:
            raise fail(exc.message) from exc

    return wrapper


def setup_logging(verbose: int) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    level_name = os.environ.get("JETPACK_LOG_LEVEL")
    if level_name:
        level = logging.getLevelNamesMapping().get(level_name.upper(), level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
