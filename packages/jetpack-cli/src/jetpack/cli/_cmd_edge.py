"""``jetpack edge build|dev|deploy|token|login|logout``: the Jetpack Worker, and signing in to it.

These commands need no ``jetpack init``: a Worker serves many projects. Local
files go under ``.jetpack/edge/`` of the current directory (or ``-C``): the
built Worker (``worker/``), its state (``state/``) and the admin token of a
local Worker (``admin-token``, mode 0600, unless ``$JETPACK_ADMIN_TOKEN`` is set).
``login`` keeps a project token in the user's credentials file
(:mod:`jetpack.shared.credentials`), never in the project.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from jetpack.cli._app import app
from jetpack.cli._common import console, err_console, fail, project_dir
from jetpack.cli._edge_auth import check_token_text, whoami
from jetpack.shared.config import load_config
from jetpack.shared.credentials import (
    Credential,
    credentials_path,
    remove_credential,
    save_credential,
    worker_key,
)
from jetpack.shared.edge import (
    ADMIN_TOKEN_ENV,
    BuildOptions,
    DevServer,
    Toolchain,
    ToolchainError,
    build_worker,
    check_types,
    ensure_toolchain,
    local_admin_token,
)
from jetpack.shared.errors import AuthError, JetpackError

__all__ = ["edge_app", "parse_duration"]

edge_app = typer.Typer(
    help="Build, run and deploy the Jetpack Worker (the server of the edge stores).",
    no_args_is_help=True,
)
token_app = typer.Typer(help="Tokens of a Worker (needs its admin token).", no_args_is_help=True)
app.add_typer(edge_app, name="edge")
edge_app.add_typer(token_app, name="token")

_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``90m``, ``45s`` → milliseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match:
        raise typer.BadParameter("use a number and a unit: 45s, 90m, 12h, 30d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _edge_dir() -> Path:
    return project_dir() / ".jetpack" / "edge"


def _toolchain() -> Toolchain:
    """The npm toolchain; the first run shows npm's progress."""
    with console.status("Preparing the Worker toolchain…") as status:

        def progress(line: str) -> None:
            status.update(line.strip())
            console.log(line)

        try:
            return ensure_toolchain(progress)
        except JetpackError as exc:
            raise fail(exc.message) from exc


def _options(
    rate_limit: int,
    rate_period: int,
    cors: list[str] | None,
    name: str = "jetpack",
    *,
    observability: bool = True,
    local: bool = False,
) -> BuildOptions:
    try:
        return BuildOptions(
            name=name,
            rate_limit=rate_limit,
            rate_limit_period=rate_period,
            cors_origins=tuple(cors or ()),
            observability=observability,
            local=local,
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc


RateLimit = Annotated[
    int, typer.Option("--rate-limit", help="Requests per period per token.", min=1)
]
RatePeriod = Annotated[int, typer.Option("--rate-period", help="Rate-limit period: 10 or 60 s.")]
Cors = Annotated[
    list[str] | None,
    typer.Option("--cors-origin", help="Allow this origin cross-origin (repeatable)."),
]


@edge_app.command("build")
def build(
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the Worker.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Also run tsc --noEmit.")] = False,
    rate_limit: RateLimit = 10_000,
    rate_period: RatePeriod = 10,
    cors: Cors = None,
) -> None:
    """Write a deployable Worker folder (sources, wrangler.jsonc, migrations)."""
    toolchain = _toolchain()
    target = out or _edge_dir() / "worker"
    try:
        built = build_worker(target, _options(rate_limit, rate_period, cors), toolchain=toolchain)
        if check:
            check_types(built, toolchain)
    except JetpackError as exc:
        raise fail(exc.message) from exc
    modules = ", ".join(m.name for m in built.modules) or "none (install a jetpack-cf-* package)"
    console.print(f"Built the Worker in {built.root} (modules: {modules})")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@edge_app.command("dev")
def dev(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free).")] = 8787,
    persist_to: Annotated[
        Path | None, typer.Option("--persist-to", help="State folder (kept across runs).")
    ] = None,
    rate_limit: RateLimit = 10_000,
    rate_period: RatePeriod = 10,
    cors: Cors = None,
) -> None:
    """Run the Worker on workerd (wrangler dev, local mode) until Ctrl-C."""
    toolchain = _toolchain()
    edge_dir = _edge_dir()
    state = (persist_to or edge_dir / "state").resolve()
    # Local mode: no traces (they would go nowhere and cost CPU on every request), and
    # no Vectorize or Workers AI binding (they have no local emulator).
    options = _options(rate_limit, rate_period, cors, observability=False, local=True)
    with _sigterm_as_interrupt():
        server: DevServer | None = None
        try:
            built = build_worker(edge_dir / "worker", options, toolchain=toolchain)
            admin = local_admin_token(edge_dir)
            server = DevServer(built, toolchain, persist_to=state, admin_token=admin, port=port)
            with console.status("Starting workerd…"):
                server.start()
            where = _admin_where(edge_dir)
            modules = ", ".join(m.name for m in built.modules) or "none"
            err_console.print(f"modules: {modules}; state: {state}; admin token: {where}")
            console.print(f"Ready on {server.url}", soft_wrap=True)
            code = server.wait()
            err_console.print(f"wrangler dev exited ({code}):\n{server.log_tail()}")
            raise typer.Exit(1)
        except KeyboardInterrupt:
            err_console.print("stopping…")
        except ToolchainError as exc:
            raise fail(exc.message) from exc
        finally:
            if server is not None:
                server.stop()


@edge_app.command("deploy")
def deploy_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Create nothing: list the steps, bundle only.")
    ] = False,
    name: Annotated[str, typer.Option("--name", help="The Worker's name.")] = "jetpack",
    out: Annotated[Path | None, typer.Option("--out", help="Where to build.")] = None,
    rate_limit: RateLimit = 10_000,
    rate_period: RatePeriod = 10,
    cors: Cors = None,
) -> None:
    """Create D1 (and Vectorize) when missing, migrate, set the admin secret, deploy.

    wrangler authenticates with $CLOUDFLARE_API_TOKEN (a Cloudflare API token),
    never with $JETPACK_API_TOKEN (a Jetpack project token).
    """
    from jetpack.shared.edge._deploy import deploy

    toolchain = _toolchain()
    edge_dir = _edge_dir()
    config = load_config(project_dir())
    options = _options(rate_limit, rate_period, cors, name)
    if config.cloudflare.d1_database_id:
        options = BuildOptions(
            **{**_fields(options), "database_id": config.cloudflare.d1_database_id}
        )
    try:
        built = build_worker(out or edge_dir / "deploy", options, toolchain=toolchain)
        admin = local_admin_token(edge_dir)
        result = deploy(
            built,
            toolchain,
            admin_token=admin,
            dry_run=dry_run,
            say=lambda line: console.print(line),
        )
    except JetpackError as exc:
        raise fail(exc.message) from exc
    if dry_run:
        console.print(f"Dry run: nothing created; bundle in {built.root / 'dist'}")
        return
    console.print(f"Deployed{f' to {result.url}' if result.url else ''}.")
    console.print(f"Admin token: {_admin_where(edge_dir)}")
    if result.database_id:
        console.print(f"D1 database id: {result.database_id} (set cloudflare.d1_database_id)")


def _admin_where(edge_dir: Path) -> str:
    """Where the admin token is (never the token itself)."""
    if os.environ.get(ADMIN_TOKEN_ENV):
        return f"${ADMIN_TOKEN_ENV}"
    return str(edge_dir / "admin-token")


def _fields(options: BuildOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


# -- tokens -----------------------------------------------------------------------

Url = Annotated[
    str | None,
    typer.Option("--url", help="The Worker (default: $JETPACK_WORKER_URL, else local dev)."),
]


def _worker_url(url: str | None) -> str:
    if url:
        return url
    configured = load_config(project_dir()).cloudflare.worker_url
    return configured or "http://127.0.0.1:8787"


async def _admin_call(
    url: str, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
) -> Any:
    from jetpack.shared.edge.client import EdgeClient

    async with EdgeClient(url, local_admin_token(_edge_dir()), retries=1) as client:
        return await client.json(method, path, json=body, params=params)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except JetpackError as exc:
        raise fail(exc.message) from exc


@token_app.command("create")
def token_create(
    project: Annotated[str, typer.Option("--project", help="Project the token is for.")],
    agent: Annotated[str | None, typer.Option("--agent", help="Bind it to one agent.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h (default: never).")
    ] = None,
    url: Url = None,
) -> None:
    """Mint a project token (shown once; only its hash is kept)."""
    body: dict[str, Any] = {"project": project, "agent_id": agent}
    if expires is not None:
        body["ttl_ms"] = parse_duration(expires)
    answer = _run(_admin_call(_worker_url(url), "POST", "/api/admin/tokens", body))
    console.print(f"token id: {answer['id']}  project: {answer['project']}", soft_wrap=True)
    if answer.get("agent_id"):
        console.print(f"acts only as agent: {answer['agent_id']}")
    if answer.get("expires_at"):
        console.print(f"expires: {answer['expires_at']}")
    console.print("Shown once; keep it secret (e.g. export JETPACK_API_TOKEN=…):")
    console.print(answer["token"], soft_wrap=True, highlight=False)


@token_app.command("list")
def token_list(
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    url: Url = None,
) -> None:
    """Tokens with their ids, projects, agents and expiry (never the tokens)."""
    params = {"project": project} if project else None
    answer = _run(_admin_call(_worker_url(url), "GET", "/api/admin/tokens", params=params))
    table = Table("project", "agent", "created", "expires", "revoked")
    table.add_column("id", no_wrap=True, min_width=18)
    for item in answer["tokens"]:
        table.add_row(
            item["project"],
            item["agent_id"] or "",
            item["created_at"][:19],
            (item["expires_at"] or "never")[:19],
            (item["revoked_at"] or "")[:19],
            item["id"],
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `token list`).")],
    url: Url = None,
) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    path = f"/api/admin/tokens/{quote(token_id, safe='')}"
    _run(_admin_call(_worker_url(url), "DELETE", path))
    console.print(f"revoked {token_id}")


# -- signing in -------------------------------------------------------------------

LoginUrl = Annotated[
    str | None,
    typer.Option("--url", help="The Worker (default: the project's cloudflare.worker_url)."),
]


def _login_url(url: str | None) -> str:
    """``--url``, else the configured Worker; normalised as the credentials file keys it."""
    try:
        chosen = url or load_config(project_dir()).cloudflare.worker_url
        if not chosen:
            raise fail(
                "no Worker URL: pass --url URL, or run `jetpack init --edge URL` in the project"
            )
        return worker_key(chosen)
    except JetpackError as exc:
        raise fail(exc.message) from exc


def _read_token(from_stdin: bool) -> str:
    if from_stdin:
        raw = sys.stdin.read()
    elif sys.stdin.isatty():
        raw = typer.prompt("Project token (input hidden)", hide_input=True, err=True)
    else:
        raise fail("no terminal to ask for the token on: pipe it in with --token-stdin")
    try:
        return check_token_text(raw)
    except JetpackError as exc:
        raise fail(f"{exc.message} (nothing stored)") from exc


@edge_app.command("login")
def login(
    url: LoginUrl = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from stdin (no prompt).")
    ] = False,
) -> None:
    """Check a project token against the Worker and keep it for this user (never in the repo).

    The token goes to the user's credentials file (mode 0600), keyed by the
    Worker's URL; every command then finds it. $JETPACK_API_TOKEN, when set,
    wins over it.
    """
    target = _login_url(url)
    token = _read_token(token_stdin)
    try:
        who = asyncio.run(whoami(target, token))
    except AuthError as exc:
        raise fail(
            f"the Worker at {target} refused this token ({exc.message}); nothing stored. "
            "Ask the Worker's admin for a project token: "
            "`jetpack edge token create --project NAME`"
        ) from exc
    except JetpackError as exc:
        raise fail(f"{exc.message} (nothing stored)") from exc
    if who.agent_id is not None:
        raise fail(
            f"this token is bound to agent {who.agent_id!r} (it is made for one agent's tools); "
            "log in with a project token; nothing stored"
        )
    where = save_credential(Credential(target, token, who.project, who.token_id))
    console.print(
        f"logged in to {target}: project {who.project}, token {who.token_id or '(id unknown)'}",
        soft_wrap=True,
    )
    console.print(f"token kept in {where} (mode 0600)", soft_wrap=True)
    if os.environ.get("JETPACK_API_TOKEN"):
        err_console.print(
            "[yellow]note:[/] JETPACK_API_TOKEN is set in this shell and wins over the saved token"
        )


@edge_app.command("logout")
def logout(url: LoginUrl = None) -> None:
    """Forget the saved token of a Worker (it stays valid there: the admin revokes it)."""
    target = _login_url(url)
    try:
        removed = remove_credential(target)
    except JetpackError as exc:
        raise fail(exc.message) from exc
    if not removed:
        console.print(f"no token saved for {target} (in {credentials_path()})", soft_wrap=True)
        return
    console.print(
        f"forgot the token for {target}; to revoke it on the Worker: "
        "`jetpack edge token revoke ID` (admin)",
        soft_wrap=True,
    )
