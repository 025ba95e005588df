"""The root ``jetpack`` command: global options, ``init``, ``config``, ``backends``, ``doctor``."""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperOption

from jetpack.cli.__about__ import __version__
from jetpack.cli._common import (
    STORES,
    console,
    fail,
    install_hint,
    open_adapters,
    project_config,
    project_dir,
    run_async,
    setup_logging,
    state,
)
from jetpack.cli._keys import check_key
from jetpack.cli._settings import Settings, load_settings
from jetpack.shared.config import CONFIG_FILE, Backend, JetpackConfig, dump_toml, load_config
from jetpack.shared.credentials import worker_key
from jetpack.shared.errors import BackendNotInstalledError, ValidationError
from jetpack.shared.registry import KNOWN_BACKENDS, create_store, discover_backends

__all__ = ["GITIGNORE", "app", "default_config", "ensure_gitignore"]


def _display_type_rich(self: TyperOption, ctx: Any) -> str | None:
    """A flag takes no value: show none (typer shows ``<bool>``)."""
    return None if self.is_flag else _typer_display_type(self, ctx)


_typer_display_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]

app = typer.Typer(
    name="jetpack",
    help="Run a swarm of coding agents over shared task, mail and memory stores.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show or change .jetpack/config.toml.", no_args_is_help=True)
app.add_typer(config_app, name="config")

GITIGNORE = "worktrees/\nprompts/\ndemo/\nmcp/\nlogs/\nevents.jsonl\n*.lock\n*.tmp\n"
"""``.jetpack/.gitignore``: the runtime files (``mcp/*.json`` hold absolute paths)."""
_GITIGNORE_HEADER = "# jetpack: the local stores' files (SQLite databases, mail folder)"


def ensure_gitignore(config: JetpackConfig) -> list[str]:
    """Add the stores' files and ``.jetpack/``'s runtime files to the ignore lists.

    Writes ``.jetpack/.gitignore`` and appends to the project's ``.gitignore``
    the store paths inside the project that it does not list yet (a database
    file with its ``-wal``/``-shm`` companions, the mail folder); returns them.
    """
    root = config.project_dir
    (root / ".jetpack").mkdir(parents=True, exist_ok=True)
    (root / ".jetpack" / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    wanted = []
    for path, suffix in (
        (config.local.tasks_db, "*"),
        (config.local.memory_db, "*"),
        (config.local.mail_dir, "/"),
    ):
        if not path.is_absolute() and ".." not in path.parts:
            wanted.append(f"/{path.as_posix()}{suffix}")
    ignore = root / ".gitignore"
    text = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    have = {line.strip() for line in text.splitlines()}
    missing = [line for line in wanted if line not in have]
    if missing:
        lead = "" if not text or text.endswith("\n") else "\n"
        block = "\n".join([_GITIGNORE_HEADER, *missing]) + "\n"
        ignore.write_text(text + lead + ("\n" if text else "") + block, encoding="utf-8")
    return missing


def _version(value: bool) -> None:
    if value:
        console.print(f"jetpack-cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            "-C",
            help="Project directory (default: the nearest holding .jetpack/, as git finds .git).",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Jetpack: agents take tasks from a shared store, lock files, learn, and report."""
    state.project = project
    state.verbose = verbose
    setup_logging(verbose)


def default_config() -> dict[str, Any]:
    """What ``jetpack init`` writes."""
    settings = Settings()
    return {
        "mode": "local",
        "local": {
            "tasks_db": ".beads/beads.db",
            "mail_dir": ".mail",
            "memory_db": ".cass/memories.db",
        },
        "agents": settings.agents.model_dump(exclude_none=True),
        "orchestrator": settings.orchestrator.model_dump(exclude_none=True),
        "claude": settings.claude.model_dump(exclude_none=True),
    }


def _edge_keys(data: dict[str, Any], url: str, local: list[str]) -> dict[str, Any]:
    """Put the project on the Worker at ``url`` (``local``: stores kept on this machine).

    Returns the config with its edge keys first (mode, [stores], [cloudflare]).
    """
    data["mode"] = "edge"
    edge = data.setdefault("cloudflare", {})
    if not isinstance(edge, dict):
        raise fail("[cloudflare] of the config is not a table")
    edge["worker_url"] = url
    stores = data.setdefault("stores", {})
    if not isinstance(stores, dict):
        raise fail("[stores] of the config is not a table")
    for store in STORES:
        if store in local:
            stores[store] = Backend.LOCAL.value
        elif stores.get(store) == Backend.LOCAL.value:
            del stores[store]
    first = ("mode", "stores", "cloudflare")
    return {
        **{k: data[k] for k in first if data.get(k)},
        **{k: data[k] for k in data if k not in first},
    }


@app.command()
@run_async
async def init(
    force: Annotated[bool, typer.Option(help="Overwrite an existing config.")] = False,
    agents: Annotated[int | None, typer.Option(help="Default number of agents.")] = None,
    executor: Annotated[str | None, typer.Option(help="claude, command or demo.")] = None,
    edge: Annotated[
        str | None,
        typer.Option(
            "--edge",
            metavar="URL",
            help="Put the stores on this Jetpack Worker (mode = edge); the token comes from "
            "`jetpack edge login` or $JETPACK_API_TOKEN, never from the config.",
        ),
    ] = None,
    local: Annotated[
        list[str] | None,
        typer.Option("--local", metavar="STORE", help="With --edge: keep this store local."),
    ] = None,
) -> None:
    """Create .jetpack/config.toml, the local stores and their .gitignore entries, here.

    With --edge URL on an existing config, only the edge keys change (mode,
    [cloudflare] worker_url, [stores]).
    """
    root = project_dir(search=False)
    file = root / CONFIG_FILE
    kept = sorted(set(local or ()))
    for store in kept:
        if store not in STORES:
            raise typer.BadParameter(f"{store!r}: one of tasks, mail, memory", param_hint="--local")
    if kept and edge is None:
        raise typer.BadParameter("only with --edge URL", param_hint="--local")
    url = None
    if edge is not None:
        try:
            url = worker_key(edge)
        except ValidationError as exc:
            raise typer.BadParameter(exc.reason, param_hint="--edge") from exc
    if file.exists() and not force and url is None:
        console.print(f"{file} exists (use --force to overwrite); opening the stores")
    else:
        if file.exists() and not force:
            load_config(root)  # a broken file: the error names what is wrong
            data = tomllib.loads(file.read_text(encoding="utf-8"))
            said = f"set the edge keys in {file}"
        else:
            data = default_config()
            said = f"wrote {file}"
        if agents is not None:
            data.setdefault("agents", {})["count"] = agents
        if executor is not None:
            data.setdefault("agents", {})["executor"] = executor
        if url is not None:
            data = _edge_keys(data, url, kept)
        text = dump_toml(data)
        _validate_text(root, text)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        console.print(said)
    config = load_config(root)
    state.config = config
    added = ensure_gitignore(config)
    if added:
        console.print(f"added to {root / '.gitignore'}: {' '.join(added)}")
    try:
        await _open_stores(config)
    except BackendNotInstalledError as exc:
        raise fail(
            f"{install_hint(exc)}\n  ({file} is written; then run `jetpack doctor`)"
        ) from exc


async def _open_stores(config: JetpackConfig) -> None:
    """Open (so create) each store; edge stores only once a token is at hand."""
    edge = [s for s in STORES if config.backend_for(s) is Backend.CLOUDFLARE]
    if config.cloudflare.api_token is not None or not edge:
        async with open_adapters(config):
            pass
        ready = True
    else:
        for store in STORES:
            if store not in edge:
                async with create_store(config, store):
                    pass
        ready = False
    for store in STORES:
        where = f" ({config.cloudflare.worker_url})" if store in edge else ""
        console.print(f"  {store:<7} {config.backend_for(store).value}{where}")
    if ready:
        console.print("[green]ready[/]: add tasks with `jetpack task add`, run `jetpack start`")
        return
    console.print(
        "next: `jetpack edge login` (asks for the project token and keeps it outside the "
        "repository), or export JETPACK_API_TOKEN; then `jetpack doctor`",
        soft_wrap=True,
    )


def _validate_text(root: Path, text: str) -> None:
    """Refuse a config text that would not load (nothing is written)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / CONFIG_FILE
        probe.parent.mkdir(parents=True)
        probe.write_text(text, encoding="utf-8")
        load_settings(load_config(tmp, env={}))


@config_app.command("show")
def config_show() -> None:
    """Print the effective config (file + JETPACK_* variables), secrets masked."""
    config = project_config(check_stores=True)
    data = config.model_dump(mode="json", exclude_none=True)
    data.pop("project_dir", None)
    settings = load_settings(config)
    data.update(settings.model_dump(mode="json", exclude_none=True))
    if config.cloudflare.api_token is not None:
        data.setdefault("cloudflare", {})["api_token"] = "********"
    console.print(dump_toml(data), end="", markup=False)


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


@config_app.command("set", context_settings={"ignore_unknown_options": True})
def config_set(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. agents.count.")],
    value: Annotated[str, typer.Argument(help='A TOML value (3, true, ["a"]) or plain text.')],
) -> None:
    """Set one key in .jetpack/config.toml; an unknown key or invalid value is refused."""
    project_config(check_stores=True)
    if key == "cloudflare.api_token":
        raise fail(
            "a token never goes into .jetpack/config.toml (the repository tracks it): "
            "run `jetpack edge login`, or set JETPACK_API_TOKEN (nothing written)"
        )
    try:
        check_key(key)
    except ValidationError as exc:
        raise fail(f"{exc.reason} (nothing written)") from exc
    file = project_dir() / CONFIG_FILE
    data = tomllib.loads(file.read_text(encoding="utf-8"))
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise fail(f"{part} is not a table")
        node = child
    node[parts[-1]] = _parse_value(value)
    text = dump_toml(data)
    try:
        _validate_text(project_dir(), text)
    except ValidationError as exc:
        raise fail(f"{key}: {exc.reason} (nothing written)") from exc
    file.write_text(text, encoding="utf-8")
    console.print(f"{key} = {_parse_value(value)!r}")


@app.command()
def backends() -> None:
    """List the installed store backends (entry points of jetpack.backends)."""
    table = Table("backend", "class", "distribution", "version")
    found = {info.name: info for info in discover_backends()}
    for info in found.values():
        table.add_row(info.name, info.value, info.distribution, info.version)
    for name, dist in KNOWN_BACKENDS.items():
        if name not in found:
            table.add_row(name, "[dim]not installed[/]", dist, "")
    console.print(table)


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Which backend serves each store and why, whether the Worker answers, what is missing.

    Never prints a token, only where it comes from. Exit code 1 when something
    a command needs is broken.
    """
    from jetpack.cli._doctor import Level, diagnose

    root = project_dir()
    with (
        console.status("checking…")
        if console.is_terminal and not as_json
        else contextlib.nullcontext()
    ):
        report = run_async(diagnose)(root, os.environ)
    if as_json:
        typer.echo(json.dumps(report.as_json()))
        raise typer.Exit(0 if report.ok else 1)
    marks = {
        Level.OK: "[green]✓[/]",
        Level.INFO: "[dim]·[/]",
        Level.WARN: "[yellow]![/]",
        Level.FAIL: "[bold red]✗[/]",
    }
    console.print(f"[bold]jetpack doctor[/] {root}", soft_wrap=True)
    section = ""
    for check in report.checks:
        if check.section != section:
            section = check.section
            console.print(f"[bold]{section}[/]")
        console.print(
            f"  {marks[check.level]} {check.name:<13} {escape(check.detail)}", soft_wrap=True
        )
        if check.fix and check.level in (Level.WARN, Level.FAIL):
            console.print(f"      fix: {escape(check.fix)}", soft_wrap=True)
    if report.ok:
        console.print(f"[green]{escape(report.summary())}[/]", soft_wrap=True)
        return
    console.print(f"[bold red]{escape(report.summary())}[/]", soft_wrap=True)
    raise typer.Exit(1)
