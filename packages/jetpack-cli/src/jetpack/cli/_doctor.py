"""``jetpack doctor``: which backend serves each store and why, and whether all of it works.

The checks, in order: the config (file, mode, unknown keys, a token in a
tracked file), each store (its backend, the setting that chose it, the
distribution that provides it), the Worker when a store is on the edge (URL,
where the token comes from — never the token —, health and an authenticated
call with their latency, each edge store's module), the executor of
``jetpack start``, the installed packages and the Worker toolchain. A check
that fails means a command needs something that is broken: ``doctor`` then
exits 1.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from jetpack.cli._common import HYBRID_NOT_BUILT, STORES, hybrid_is_local
from jetpack.cli._edge_auth import whoami
from jetpack.cli._settings import load_settings
from jetpack.shared.config import (
    CONFIG_FILE,
    ENV_VARS,
    Backend,
    JetpackConfig,
    StoreKind,
    load_config,
)
from jetpack.shared.credentials import credentials_path, permission_problem
from jetpack.shared.edge import cache_root, lock_hash
from jetpack.shared.errors import AuthError, JetpackError
from jetpack.shared.registry import KNOWN_BACKENDS, create_store, discover_backends

__all__ = ["Check", "Level", "Report", "diagnose"]

_DISTRIBUTIONS = (
    "jetpack-shared",
    "jetpack-cli",
    *dict.fromkeys(KNOWN_BACKENDS.values()),
    "httpx",
    "mcp",
)


class Level(StrEnum):
    """How a check went."""

    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: its section, what was checked, how it went, and the fix."""

    section: str
    name: str
    level: Level
    detail: str
    fix: str | None = None


@dataclass(slots=True)
class Report:
    """Every finding of one ``jetpack doctor``."""

    project: Path
    checks: list[Check] = field(default_factory=list)
    backends: dict[str, str] = field(default_factory=dict)
    """Store → backend family that serves it."""

    @property
    def ok(self) -> bool:
        """True when nothing needed is broken."""
        return not self.problems

    @property
    def problems(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.level is Level.FAIL]

    def add(
        self, section: str, name: str, level: Level, detail: str, fix: str | None = None
    ) -> None:
        """Record one finding."""
        self.checks.append(Check(section, name, level, detail, fix))

    def summary(self) -> str:
        """One line: each store's backend, then the verdict."""
        stores = ", ".join(f"{store} {backend}" for store, backend in self.backends.items())
        lead = f"{stores}: " if stores else ""
        if self.ok:
            return f"{lead}all good"
        count = len(self.problems)
        first = self.problems[0]
        return f"{lead}{count} problem{'s' if count > 1 else ''} (first: {first.name})"

    def as_json(self) -> dict[str, Any]:
        """The report as plain data (``--json``)."""
        return {
            "project": str(self.project),
            "ok": self.ok,
            "backends": self.backends,
            "checks": [{**asdict(c), "level": c.level.value} for c in self.checks],
        }


class _Origins:
    """Where a config value came from: a JETPACK_* variable, the file, or the default."""

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.env = env
        file = root / CONFIG_FILE
        try:
            self.data: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            self.data = {}

    def __call__(self, *key: str) -> str:
        var = next((v for v, path in ENV_VARS.items() if path == key), None)
        if var is not None and self.env.get(var):
            return var
        node: Any = self.data
        for part in key:
            if not isinstance(node, dict) or part not in node:
                return "default"
            node = node[part]
        return str(CONFIG_FILE)


def _config(report: Report, root: Path, env: Mapping[str, str]) -> JetpackConfig | None:
    from jetpack.cli._keys import unknown_keys

    file = root / CONFIG_FILE
    if not file.exists():
        report.add(
            "config",
            "project",
            Level.WARN,
            f"no {CONFIG_FILE} in {root} or above: defaults and JETPACK_* variables only",
            "jetpack init (or jetpack init --edge URL)",
        )
    try:
        config = load_config(root, env)
    except JetpackError as exc:
        report.add("config", "config", Level.FAIL, exc.message, f"fix {CONFIG_FILE}")
        return None
    origin = _Origins(root, env)
    if file.exists():
        report.add("config", "config", Level.OK, f"{file} (mode {config.mode.value})")
    for text in unknown_keys(config):
        report.add("config", "key", Level.WARN, f"{text}; ignored")
    if hybrid_is_local(config):
        report.add("config", "mode", Level.WARN, HYBRID_NOT_BUILT, 'mode = "local" or "edge"')
    if config.cloudflare.api_token is not None and origin("cloudflare", "api_token") == str(
        CONFIG_FILE
    ):
        report.add(
            "config",
            "token",
            Level.WARN,
            f"a token is written in {CONFIG_FILE}, which the repository tracks",
            "jetpack edge login, then delete cloudflare.api_token from the file",
        )
    return config


def _stores(report: Report, config: JetpackConfig, origin: _Origins) -> list[StoreKind]:
    """Check each store's backend; return the edge stores whose backend is installed."""
    installed = {info.name: info for info in discover_backends()}
    edge: list[StoreKind] = []
    for store in STORES:
        backend = config.backend_for(store)
        report.backends[store] = backend.value
        override = getattr(config.stores, store)
        if override is not None:
            why = f"[stores] {store} = {override.value}, from {origin('stores', store)}"
        else:
            why = f"mode {config.mode.value}, from {origin('mode')}"
        name = f"{store}.{backend.value}"
        info = installed.get(name)
        if info is None:
            dist = KNOWN_BACKENDS.get(name, f"a package providing {name}")
            report.add(
                "stores",
                store,
                Level.FAIL,
                f"{backend.value}: not installed ({why})",
                f"pip install {dist}",
            )
            continue
        report.add(
            "stores",
            store,
            Level.OK,
            f"{backend.value}: {info.distribution} {info.version} ({why})",
        )
        if backend is Backend.CLOUDFLARE:
            edge.append(store)
    return edge


async def _worker(
    report: Report,
    config: JetpackConfig,
    origin: _Origins,
    edge: list[StoreKind],
    env: Mapping[str, str],
) -> None:
    needed = any(config.backend_for(s) is Backend.CLOUDFLARE for s in STORES)
    bad = Level.FAIL if needed else Level.WARN
    url = config.cloudflare.worker_url
    if not url:
        if needed:
            report.add(
                "worker",
                "url",
                Level.FAIL,
                "no Worker URL, and a store is on the edge",
                "jetpack init --edge URL (or set JETPACK_WORKER_URL)",
            )
        return
    report.add("worker", "url", Level.INFO, f"{url} (from {origin('cloudflare', 'worker_url')})")
    secret = config.cloudflare.api_token
    source = config.cloudflare.api_token_source
    saved = credentials_path(env)
    if saved is not None and (problem := permission_problem(saved)):
        report.add("worker", "credentials", Level.WARN, problem, f"chmod 600 {saved}")
    if secret is None:
        report.add(
            "worker",
            "token",
            bad,
            f"no project token for {url} (JETPACK_API_TOKEN unset, none saved in {saved})",
            f"jetpack edge login --url {url} (or export JETPACK_API_TOKEN)",
        )
        await _health_only(report, url, bad)
        return
    where = "credentials file " + source if source and source == str(saved) else source
    try:
        who = await whoami(url, secret.get_secret_value())
    except AuthError as exc:
        report.add(
            "worker",
            "token",
            bad,
            f"refused the token from {where}: {exc.message}",
            f"jetpack edge login --url {url} with a valid project token (or fix JETPACK_API_TOKEN)",
        )
        return
    except JetpackError as exc:
        report.add("worker", "health", bad, exc.message, "start the Worker (jetpack edge dev)")
        return
    report.add("worker", "health", Level.OK, f"answers, same API version ({who.health_ms:.0f} ms)")
    if who.agent_id is not None:
        report.add(
            "worker",
            "token",
            bad,
            f"the token from {where} acts only as agent {who.agent_id!r}; "
            "the CLI needs a project token",
            f"jetpack edge login --url {url} with a project token",
        )
    else:
        report.add(
            "worker",
            "token",
            Level.OK,
            f"project {who.project}, token {who.token_id or '(id unknown)'}, from {where} "
            f"({who.auth_ms:.0f} ms)",
        )
    for store in edge:
        started = time.perf_counter()
        try:
            async with create_store(config, store):
                pass
        except JetpackError as exc:
            report.add("worker", f"{store} module", Level.FAIL, exc.message)
            continue
        elapsed = (time.perf_counter() - started) * 1000
        report.add("worker", f"{store} module", Level.OK, f"served ({elapsed:.0f} ms to open)")


async def _health_only(report: Report, url: str, bad: Level) -> None:
    """Without a token: whether the Worker is up at all."""

    def get() -> int:
        with urllib.request.urlopen(url.rstrip("/") + "/api/health", timeout=10) as answer:
            return int(answer.status)

    started = time.perf_counter()
    try:
        status = await asyncio.to_thread(get)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        detail = f"the Worker at {url} did not answer GET /api/health: {type(exc).__name__}"
        report.add("worker", "health", bad, detail)
        return
    elapsed = (time.perf_counter() - started) * 1000
    if status == 200:
        report.add("worker", "health", Level.OK, f"answers ({elapsed:.0f} ms)")
    else:
        report.add("worker", "health", bad, f"health check answered {status}")


def _executor(report: Report, config: JetpackConfig) -> None:
    try:
        settings = load_settings(config)
    except JetpackError as exc:
        report.add("executor", "settings", Level.FAIL, exc.message, f"fix {CONFIG_FILE}")
        return
    name = settings.agents.executor
    if name == "claude":
        command = settings.claude.command
        found = shutil.which(command)
        if found is None:
            report.add(
                "executor",
                "claude",
                Level.FAIL,
                f"{command!r} is not on PATH (agents.executor = claude, for jetpack start)",
                "npm install -g @anthropic-ai/claude-code, or set agents.executor",
            )
        else:
            report.add("executor", "claude", Level.OK, found)
    else:
        report.add("executor", name, Level.OK, f"agents.executor = {name}")
    if settings.orchestrator.worktrees and shutil.which("git") is None:
        report.add("executor", "git", Level.FAIL, "orchestrator.worktrees needs git", "install git")


def _packages(report: Report) -> None:
    found = []
    for dist in _DISTRIBUTIONS:
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    report.add("packages", "installed", Level.INFO, ", ".join(found))


def _toolchain(report: Report, env: Mapping[str, str]) -> None:
    """For ``jetpack edge dev|build|deploy`` only: never a failure here."""
    node = shutil.which("node", path=env.get("PATH"))
    if node is not None:
        try:
            out = subprocess.run(
                [node, "--version"], capture_output=True, text=True, timeout=20, check=False
            ).stdout.strip()
        except OSError:
            out = "?"
        report.add("toolchain", "node", Level.INFO, f"{node} {out}")
    else:
        report.add("toolchain", "node", Level.INFO, "not on PATH (jetpack edge needs Node.js)")
    root = cache_root(env) / lock_hash()
    ready = (root / ".complete").exists()
    report.add(
        "toolchain",
        "worker",
        Level.INFO,
        f"installed in {root}"
        if ready
        else "not installed yet (the first `jetpack edge dev` installs it)",
    )


async def diagnose(root: Path, env: Mapping[str, str]) -> Report:
    """Run every check for the project at ``root`` (``env``: the JETPACK_* variables)."""
    report = Report(project=root)
    config = _config(report, root, env)
    if config is not None:
        origin = _Origins(root, env)
        edge = _stores(report, config, origin)
        await _worker(report, config, origin, edge, env)
        _executor(report, config)
    _packages(report)
    await asyncio.to_thread(_toolchain, report, env)
    return report
