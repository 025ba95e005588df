"""Compose a deployable Worker folder from the gateway and the installed modules.

The folder::

    wrangler.jsonc              bindings: D1, rate limiter, Durable Objects…
    tsconfig.json               strict; `@jetpack/gateway` → src/gateway
    package.json, package-lock.json   the pinned toolchain (for `npm ci` elsewhere)
    node_modules -> ~/.cache/jetpack/edge/<hash>/node_modules
    src/index.ts                generated: the gateway + every module
    src/gateway/*.ts            from jetpack-shared
    src/modules/<name>/*.ts     from each cf package's worker/ folder
    migrations/<name>/NNNN_*.sql  D1 migrations, applied by wrangler in order

wrangler bundles it (esbuild inside wrangler; no other build tool) and
``tsc --noEmit`` type-checks it (:func:`check_types`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetpack.shared.edge._modules import EdgeModule, discover_modules
from jetpack.shared.edge._toolchain import Toolchain, ToolchainError, worker_data

__all__ = [
    "BuildOptions",
    "WorkerBuild",
    "build_worker",
    "check_types",
    "wrangler_config",
]

GATEWAY = "gateway"
"""Migrations folder of the gateway's own tables."""
LOCAL_DATABASE_ID = "00000000-0000-4000-8000-000000000000"
"""Placeholder D1 id for local runs (wrangler dev); deploy fills in the real one."""


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Choices baked into a build.

    Args:
        name: the Worker's name on Cloudflare.
        rate_limit: requests per ``rate_limit_period`` per token. The default
            does not throttle a busy swarm; tests build with a low one.
        rate_limit_period: 10 or 60 seconds (the binding allows only these).
        cors_origins: origins allowed cross-origin; none by default.
        retention_days: how long audit rows are kept (idempotency keys and upload
            parts: one day at most), enforced by a daily cron trigger.
        database_name: the D1 database's name.
        database_id: its id (deploy); a placeholder for local runs.
        compatibility_date: the Workers runtime behaviour to pin.
        modules: only these modules (by name); None = every installed one.
        features: switches that modules' ``configure`` hooks read (test-only
            stand-in bindings and the like).
        rate_limit_namespace: the rate limiter's namespace id (unique per account).
        local: a build for ``wrangler dev`` (local mode): bindings that have no
            local emulator (Vectorize, Workers AI) are left out, so modules use
            what runs locally instead (``wrangler dev`` would bind them to
            something that throws "needs to be run remotely").
        observability: Workers Logs and traces (on when deployed). Local runs
            (``jetpack edge dev``, the test fixture) build without: there the
            traces go nowhere and cost CPU on every request (about a tenth of
            the Worker's share of a claim).
    """

    name: str = "jetpack"
    rate_limit: int = 10_000
    rate_limit_period: int = 10
    cors_origins: Sequence[str] = ()
    retention_days: float = 30
    database_name: str = "jetpack"
    database_id: str | None = None
    compatibility_date: str = "2026-11-01"
    modules: Sequence[str] | None = None
    features: Mapping[str, Any] = field(default_factory=dict)
    rate_limit_namespace: str = "1001"
    local: bool = False
    observability: bool = True

    def __post_init__(self) -> None:
        if self.rate_limit_period not in (10, 60):
            raise ValueError("rate_limit_period must be 10 or 60 seconds")
        if self.rate_limit < 1:
            raise ValueError("rate_limit must be at least 1")
        if not self.retention_days > 0:
            raise ValueError("retention_days must be positive")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", self.name):
            raise ValueError("name: lower-case letters, digits and -, as Cloudflare wants")
        for origin in self.cors_origins:
            if not re.fullmatch(r"https?://[^\s,/]+", origin):
                raise ValueError(f"cors origin {origin!r}: scheme://host[:port], no path")


@dataclass(frozen=True, slots=True)
class WorkerBuild:
    """A composed Worker folder."""

    root: Path
    modules: tuple[EdgeModule, ...]
    options: BuildOptions

    @property
    def config_path(self) -> Path:
        """Its ``wrangler.jsonc``."""
        return self.root / "wrangler.jsonc"

    def config(self) -> dict[str, Any]:
        """The wrangler config as written (plain JSON is valid JSONC)."""
        data: dict[str, Any] = json.loads(self.config_path.read_text(encoding="utf-8"))
        return data


def _identifier(name: str) -> str:
    return "module_" + re.sub(r"\W", "_", name)


def _index_ts(modules: Sequence[EdgeModule]) -> str:
    lines = [
        "// Generated by jetpack.shared.edge (build_worker); do not edit.",
        'import { createWorker } from "@jetpack/gateway";',
    ]
    for module in modules:
        lines.append(f'import {_identifier(module.name)} from "./modules/{module.name}/routes";')
    for module in modules:
        classes = ", ".join([*(do.class_name for do in module.durable_objects), *module.exports])
        if classes:
            lines.append(f'export {{ {classes} }} from "./modules/{module.name}/routes";')
    names = ", ".join(_identifier(m.name) for m in modules)
    lines.append(f"export default createWorker([{names}]);")
    return "\n".join(lines) + "\n"


def wrangler_config(modules: Sequence[EdgeModule], options: BuildOptions) -> dict[str, Any]:
    """The wrangler config of a Worker made of the gateway and ``modules``."""
    config: dict[str, Any] = {
        "$schema": "node_modules/wrangler/config-schema.json",
        "name": options.name,
        "main": "src/index.ts",
        "compatibility_date": options.compatibility_date,
        "workers_dev": True,
        "observability": {"enabled": options.observability},
        "d1_databases": [
            {
                "binding": "DB",
                "database_name": options.database_name,
                "database_id": options.database_id or LOCAL_DATABASE_ID,
                "migrations_dir": "migrations",
                "migrations_pattern": "migrations/*/*.sql",
            }
        ],
        "ratelimits": [
            {
                "name": "RATE_LIMITER",
                "namespace_id": options.rate_limit_namespace,
                "simple": {"limit": options.rate_limit, "period": options.rate_limit_period},
            }
        ],
        "vars": {
            "JETPACK_RATE_LIMIT_PERIOD": str(options.rate_limit_period),
            "JETPACK_RETENTION_DAYS": str(options.retention_days),
            "JETPACK_CORS_ORIGINS": ",".join(options.cors_origins),
        },
        # Retention (audit rows, idempotency keys) once a day.
        "triggers": {"crons": ["17 3 * * *"]},
    }
    objects = [do for m in modules for do in m.durable_objects]
    if objects:
        config["durable_objects"] = {
            "bindings": [{"name": do.binding, "class_name": do.class_name} for do in objects]
        }
        config["migrations"] = [dict(step) for m in modules for step in m.durable_object_migrations]
    indexes = [v for m in modules for v in m.vectorize]
    if indexes and not options.local:
        config["vectorize"] = [{"binding": v.binding, "index_name": v.index_name} for v in indexes]
    ai = sorted({m.ai_binding for m in modules if m.ai_binding})
    if ai and not options.local:
        config["ai"] = {"binding": ai[0]}
    for module in modules:
        if module.configure is not None:
            module.configure(config, options.features)
    return config


def _tsconfig() -> dict[str, Any]:
    return {
        "compilerOptions": {
            "target": "ES2022",
            "module": "ES2022",
            "moduleResolution": "bundler",
            "lib": ["ES2024"],
            "types": ["@cloudflare/workers-types"],
            "strict": True,
            "noUncheckedIndexedAccess": True,
            "noImplicitOverride": True,
            "noFallthroughCasesInSwitch": True,
            "isolatedModules": True,
            "skipLibCheck": True,
            "noEmit": True,
            "paths": {"@jetpack/gateway": ["./src/gateway/index.ts"]},
        },
        "include": ["src/**/*.ts"],
    }


def _copy_sources(source: Path, target: Path) -> None:
    """Copy a worker/ folder's TypeScript (everything but migrations/ and node_modules/)."""
    for path in sorted(source.rglob("*.ts")):
        relative = path.relative_to(source)
        if relative.parts[0] in ("migrations", "node_modules"):
            continue
        dest = target / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def build_worker(
    out: str | os.PathLike[str],
    options: BuildOptions | None = None,
    *,
    modules: Sequence[EdgeModule] | None = None,
    toolchain: Toolchain | None = None,
) -> WorkerBuild:
    """Write a deployable Worker folder at ``out`` (replacing its generated parts).

    ``modules`` defaults to every installed module (or ``options.modules``).
    With a ``toolchain``, ``node_modules`` links to it so wrangler and tsc run
    in the folder. Persisted state (``.wrangler/``) and ``.dev.vars`` are kept.
    """
    options = options or BuildOptions()
    chosen = tuple(modules if modules is not None else discover_modules(options.modules))
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for generated in ("src", "migrations"):
        shutil.rmtree(root / generated, ignore_errors=True)
    data = worker_data()
    _copy_sources(data / "gateway", root / "src" / "gateway")
    _write_migrations(root / "migrations" / GATEWAY, sorted((data / "migrations").glob("*.sql")))
    for module in chosen:
        if not (module.worker_dir / "routes.ts").exists():
            raise ToolchainError(f"edge module {module.name!r} has no worker/routes.ts")
        _copy_sources(module.worker_dir, root / "src" / "modules" / module.name)
        _write_migrations(root / "migrations" / module.name, module.migrations)
    (root / "src" / "index.ts").write_text(_index_ts(chosen), encoding="utf-8")
    config = wrangler_config(chosen, options)
    (root / "wrangler.jsonc").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (root / "tsconfig.json").write_text(json.dumps(_tsconfig(), indent=2) + "\n", encoding="utf-8")
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(data / name, root / name)
    (root / ".gitignore").write_text("node_modules\n.wrangler\n.dev.vars\n", encoding="utf-8")
    if toolchain is not None:
        link = root / "node_modules"
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == toolchain.node_modules:
                return WorkerBuild(root, chosen, options)
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                link.unlink()
        link.symlink_to(toolchain.node_modules, target_is_directory=True)
    return WorkerBuild(root, chosen, options)


def _write_migrations(folder: Path, files: Sequence[Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        if not re.match(r"^\d{4}_[a-z0-9_]+\.sql$", path.name):
            raise ToolchainError(f"migration {path}: name it NNNN_words.sql")
        shutil.copyfile(path, folder / path.name)


def check_types(build: WorkerBuild, toolchain: Toolchain) -> str:
    """Run ``tsc --noEmit`` on the build; return its output, or raise naming the errors."""
    result = subprocess.run(
        toolchain.tsc("--noEmit", "-p", str(build.root / "tsconfig.json")),
        cwd=build.root,
        env=toolchain.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise ToolchainError(f"tsc --noEmit found errors:\n{output[-6000:]}")
    return output
