"""Deploy a Worker to Cloudflare with wrangler: resources, migrations, secret, code.

:func:`deploy` runs, in order:

1. find or create the D1 database (``wrangler d1 list --json`` / ``d1 create``)
   and write its id into ``wrangler.jsonc``;
2. find or create each Vectorize index a module binds (``vectorize list/create``);
3. apply the pending D1 migrations (``wrangler d1 migrations apply DB --remote``);
4. deploy the code with the admin secret (``wrangler deploy --secrets-file``);
   Durable Object migrations in ``wrangler.jsonc`` are applied by that deploy.

Run again after an upgrade, it applies only what is pending. wrangler reads
Cloudflare's credential from ``CLOUDFLARE_API_TOKEN`` (an API token of the
Cloudflare account); that is never ``JETPACK_API_TOKEN`` (a Jetpack project
token), which is kept out of wrangler's environment. With ``dry_run`` nothing
is created: the commands are listed and ``wrangler deploy --dry-run`` bundles
the Worker into ``dist/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jetpack.shared.edge._build import WorkerBuild
from jetpack.shared.edge._dev import ADMIN_TOKEN_ENV
from jetpack.shared.edge._toolchain import Progress, Toolchain, ToolchainError

__all__ = ["CLOUDFLARE_TOKEN_ENV", "DeployResult", "Runner", "deploy"]

CLOUDFLARE_TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
"""wrangler's Cloudflare credential (not a Jetpack token)."""
_JETPACK_TOKEN_ENV = "JETPACK_API_TOKEN"

Runner = Callable[[Sequence[str], Path, Mapping[str, str], str | None], tuple[int, str]]
"""Runs one command (argv, cwd, env, stdin text) → (exit code, output)."""


def subprocess_runner(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], stdin: str | None
) -> tuple[int, str]:
    """The real runner: a subprocess, output captured."""
    result = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr)


@dataclass
class DeployResult:
    """What a deploy did (or, dry, would do)."""

    commands: list[str] = field(default_factory=list)
    """Each wrangler command line, secrets left out."""
    database_id: str | None = None
    url: str | None = None
    """The deployed Worker's URL, when wrangler printed one."""


def _display(argv: Sequence[str]) -> str:
    shown = list(argv)
    # Drop the node binary and wrangler's script path: show it as `wrangler …`.
    if len(shown) >= 2 and shown[1].endswith("wrangler.js"):
        shown = ["wrangler", *shown[2:]]
    return " ".join(shown)


def _json_list(output: str) -> list[dict[str, object]]:
    """The JSON list wrangler printed (``--json``), skipping any banner before it."""
    if not output:
        return []
    start = output.find("[")
    if start < 0:
        raise ToolchainError(f"expected a JSON list from wrangler, got:\n{output[-2000:]}")
    data = json.loads(output[start:])
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def deploy(
    build: WorkerBuild,
    toolchain: Toolchain,
    *,
    admin_token: str,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    runner: Runner = subprocess_runner,
    say: Progress = print,
) -> DeployResult:
    """Deploy ``build`` (see the module docs); raise ToolchainError naming the failed step."""
    base = dict(os.environ if env is None else env)
    if not dry_run:
        cf_token = base.get(CLOUDFLARE_TOKEN_ENV, "")
        if not cf_token:
            raise ToolchainError(
                f"{CLOUDFLARE_TOKEN_ENV} is not set: wrangler needs a Cloudflare API token "
                "(dash.cloudflare.com → My Profile → API Tokens, with Workers Scripts, D1 and "
                f"Vectorize edit rights). {_JETPACK_TOKEN_ENV} is a Jetpack project token, not this"
            )
        if cf_token == base.get(_JETPACK_TOKEN_ENV):
            raise ToolchainError(
                f"{CLOUDFLARE_TOKEN_ENV} equals {_JETPACK_TOKEN_ENV}: the first is Cloudflare's "
                "account credential for wrangler, the second a Jetpack project token"
            )
    base.pop(_JETPACK_TOKEN_ENV, None)
    base.pop(ADMIN_TOKEN_ENV, None)
    wrangler_env = toolchain.env(base)
    result = DeployResult()
    config = build.config()
    database = config["d1_databases"][0]

    def run(argv: list[str], what: str, stdin: str | None = None) -> str:
        result.commands.append(_display(argv))
        if dry_run:
            say(f"would run: {_display(argv)}")
            return ""
        say(f"{what}: {_display(argv)}")
        code, output = runner(argv, build.root, wrangler_env, stdin)
        if code != 0:
            raise ToolchainError(f"{what} failed (exit {code}):\n{output[-3000:]}")
        return output

    if build.options.database_id:
        result.database_id = build.options.database_id
    else:
        listed = run(toolchain.wrangler("d1", "list", "--json"), "Looking up the D1 database")
        found = [db for db in _json_list(listed) if db.get("name") == database["database_name"]]
        if found:
            result.database_id = str(found[0].get("uuid") or found[0].get("id"))
        else:
            created = run(
                toolchain.wrangler("d1", "create", database["database_name"]),
                "Creating the D1 database",
            )
            match = re.search(r'"?database_id"?\s*[:=]\s*"([0-9a-f-]{36})"', created)
            if match:
                result.database_id = match.group(1)
            elif not dry_run:
                raise ToolchainError(f"no database id in wrangler's answer:\n{created[-2000:]}")
    if result.database_id:
        database["database_id"] = result.database_id
        build.config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    for index in config.get("vectorize", []):
        name = index["index_name"]
        module_index = next(v for m in build.modules for v in m.vectorize if v.index_name == name)
        listed = run(toolchain.wrangler("vectorize", "list", "--json"), "Looking up Vectorize")
        names = {str(item.get("name")) for item in _json_list(listed)}
        if name not in names:
            run(
                toolchain.wrangler(
                    "vectorize",
                    "create",
                    name,
                    f"--dimensions={module_index.dimensions}",
                    f"--metric={module_index.metric}",
                ),
                f"Creating the Vectorize index {name}",
            )

    run(
        toolchain.wrangler("d1", "migrations", "apply", "DB", "--remote"),
        "Applying D1 migrations",
        stdin="y\n",
    )
    if dry_run:
        outdir = build.root / "dist"
        argv = toolchain.wrangler("deploy", "--dry-run", "--outdir", str(outdir))
        result.commands.append(_display(argv))
        say(f"bundling (dry run): {_display(argv)}")
        code, output = runner(argv, build.root, wrangler_env, None)
        if code != 0:
            raise ToolchainError(
                f"wrangler deploy --dry-run failed (exit {code}):\n{output[-3000:]}"
            )
        return result
    with tempfile.TemporaryDirectory() as tmp:
        secrets_file = Path(tmp) / "secrets.json"
        fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({ADMIN_TOKEN_ENV: admin_token}, handle)
        output = run(toolchain.wrangler("deploy", "--secrets-file", str(secrets_file)), "Deploying")
    match = re.search(r"https://[\w.-]+\.workers\.dev", output)
    result.url = match.group(0) if match else None
    return result
