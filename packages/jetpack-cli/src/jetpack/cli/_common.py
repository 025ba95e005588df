"""What every command shares: the project directory, the stores, the console, error exits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, get_args

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jetpack.shared import MailBus, MemoryStore, TaskStore
from jetpack.shared.config import (
    CONFIG_FILE,
    Backend,
    JetpackConfig,
    Mode,
    StoreKind,
    load_config,
)
from jetpack.shared.errors import (
    AuthError,
    BackendNotInstalledError,
    JetpackError,
    NotFoundError,
    ValidationError,
)
from jetpack.shared.registry import Adapters, create_adapters, create_store, load_backend

__all__ = [
    "STORES",
    "check_edge_access",
    "command_errors",
    "console",
    "err_console",
    "error_line",
    "fail",
    "find_root",
    "id_column",
    "install_hint",
    "open_adapters",
    "open_mail",
    "open_memory",
    "open_tasks",
    "project_config",
    "project_dir",
    "resolve_agent_id",
    "resolve_task_id",
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

    project: Path | None = None
    """``--project``; None: search upward from the current directory."""
    verbose: int = 0
    config: JetpackConfig | None = None
    """The config the command loaded (for the hints of its errors)."""


state = _State()


def find_root(start: Path) -> Path | None:
    """The nearest directory from ``start`` upward holding ``.jetpack/config.toml``, as git does."""
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return None


def project_dir(*, search: bool = True) -> Path:
    """The project root: ``--project``, else the nearest initialised folder upward, else here.

    ``search=False`` (``jetpack init``) takes the current directory as it is.
    """
    if state.project is not None:
        return state.project.resolve()
    here = Path.cwd()
    return (find_root(here) if search else None) or here


HYBRID_NOT_BUILT = (
    "mode hybrid: the stores it covers are local; syncing them with the Worker is not built yet"
)


def hybrid_is_local(config: JetpackConfig) -> bool:
    """Whether ``mode = "hybrid"`` decides a store (which then runs plain local, unsynced)."""
    return config.mode is Mode.HYBRID and any(
        getattr(config.stores, store) is None for store in STORES
    )


def project_config(*, require_init: bool = True, check_stores: bool = False) -> JetpackConfig:
    """Load the project's config; refuse an un-initialised project unless told not to.

    Unknown keys of the tables jetpack knows are warned about (nearest key named);
    ``check_stores`` adds the store tables (``start``, ``config``: it imports the stores).
    """
    from jetpack.cli._keys import unknown_keys

    root = project_dir()
    if require_init and not (root / CONFIG_FILE).exists():
        fail(
            f"{root} is not in a Jetpack project (no {CONFIG_FILE} here or above); "
            "run `jetpack init` first"
        )
    config = load_config(root)
    state.config = config
    for text in unknown_keys(config, stores=check_stores):
        err_console.print(f"[yellow]warning:[/] {escape(text)} in {CONFIG_FILE}; ignored")
    if hybrid_is_local(config):
        err_console.print(f"[yellow]warning:[/] {HYBRID_NOT_BUILT}; use mode local or edge")
    return config


async def resolve_task_id(store: TaskStore, given: str) -> str:
    """A whole task id, or a prefix that names exactly one task (as git takes commit ids)."""
    if await store.get_task(given) is not None:
        return given
    matches = sorted(t.id for t in await store.list_tasks() if t.id.startswith(given))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError("task", given)
    shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise ValidationError("task id", f"{given!r} is a prefix of {len(matches)} tasks: {shown}")


async def resolve_agent_id(bus: MailBus, given: str) -> str:
    """An agent id, or a prefix that names exactly one agent the bus has seen."""
    known = [a.agent_id for a in await bus.list_agents(include_offline=True)]
    if given in known or given == "*":
        return given
    matches = sorted(a for a in known if a.startswith(given))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise ValidationError(
            "agent id", f"{given!r} is a prefix of {len(matches)} agents: {shown}"
        )
    return given  # an agent not seen yet may still get mail


def id_column(table: Table, header: str, ids: Iterable[str], **options: Any) -> None:
    """Add a column wide enough that no id in it is ever cut or wrapped."""
    width = max((len(i) for i in ids), default=len(header))
    table.add_column(header, no_wrap=True, min_width=max(width, len(header)), **options)


STORES: tuple[StoreKind, ...] = get_args(StoreKind)
"""The three stores, in the order they are shown."""


def check_edge_access(config: JetpackConfig, stores: Iterable[StoreKind] = STORES) -> None:
    """Refuse, saying how to fix it, when a store on the edge has no Worker URL or no token."""
    edge = [store for store in stores if config.backend_for(store) is Backend.CLOUDFLARE]
    if not edge:
        return
    for store in edge:
        load_backend(f"{store}.{Backend.CLOUDFLARE.value}")  # not installed: what to install
    which = ", ".join(edge)
    if not config.cloudflare.worker_url:
        raise ValidationError(
            "cloudflare.worker_url",
            f"is not set, and the {which} store is on the edge: run `jetpack init --edge URL` "
            "(or set JETPACK_WORKER_URL)",
        )
    if config.cloudflare.api_token is None:
        raise ValidationError(
            "cloudflare.api_token",
            f"no project token for {config.cloudflare.worker_url} (the {which} store is on the "
            "edge): run `jetpack edge login` (kept outside the repository), or set "
            "JETPACK_API_TOKEN",
        )


def open_adapters(config: JetpackConfig, agent_id: str = "cli") -> Adapters:
    """The project's three stores, from the installed backends."""
    check_edge_access(config)
    return create_adapters(config, agent_id=agent_id)


def open_tasks(config: JetpackConfig) -> TaskStore:
    """Only the task store (commands that need one store open one store)."""
    check_edge_access(config, ["tasks"])
    store: TaskStore = create_store(config, "tasks")
    return store


def open_mail(config: JetpackConfig, agent_id: str = "cli") -> MailBus:
    """Only the mail bus, speaking for ``agent_id``."""
    check_edge_access(config, ["mail"])
    bus: MailBus = create_store(config, "mail", agent_id=agent_id)
    return bus


def open_memory(config: JetpackConfig) -> MemoryStore:
    """Only the memory store (opening it may load the embedding model)."""
    check_edge_access(config, ["memory"])
    store: MemoryStore = create_store(config, "memory")
    return store


def error_line(message: str) -> None:
    """Print ``error: message`` on stderr."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error and exit with ``code``."""
    error_line(message)
    raise typer.Exit(code)


def install_hint(exc: BackendNotInstalledError) -> str:
    """The error's message and the CLI extra that brings every backend of its family."""
    family = "cloudflare" if exc.name.endswith(f".{Backend.CLOUDFLARE.value}") else "local"
    return f"{exc.message}\n  (or: pip install 'jetpack-cli[{family}]')"


def _auth_hint(exc: AuthError) -> str:
    """A refused token: say where it came from and how to replace it."""
    edge = state.config.cloudflare if state.config is not None else None
    source = edge.api_token_source if edge is not None else None
    if source is None:
        return exc.message
    url = f" --url {edge.worker_url}" if edge is not None and edge.worker_url else ""
    return (
        f"{exc.message}\n  (the token came from {source}: run `jetpack edge login{url}` with a "
        "valid project token, or fix JETPACK_API_TOKEN; `jetpack doctor` checks it)"
    )


@contextlib.contextmanager
def command_errors() -> Iterator[None]:
    """Around a command's body: Jetpack errors become one red line and exit code 1."""
    try:
        yield
    except BackendNotInstalledError as exc:
        raise fail(install_hint(exc)) from exc
    except AuthError as exc:
        raise fail(_auth_hint(exc)) from exc
    except JetpackError as exc:
        raise fail(exc.message) from exc


def run_async(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """Run an async command body in :func:`command_errors`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with command_errors():
            return asyncio.run(func(*args, **kwargs))

    return wrapper


def setup_logging(verbose: int) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    level_name = os.environ.get("JETPACK_LOG_LEVEL")
    if level_name:
        level = logging.getLevelNamesMapping().get(level_name.upper(), level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
