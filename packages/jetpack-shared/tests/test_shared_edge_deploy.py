"""deploy(): the wrangler commands, their order, and what it writes.

Cloudflare's API cannot be reached here, so wrangler's account-side commands
run against ``FakeWrangler``: it answers as wrangler 4 prints (``--json``
lists, the ``d1 create`` config snippet, the deploy URL) and records every call.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jetpack.shared.edge import (
    BuildOptions,
    EdgeModule,
    ToolchainError,
    VectorizeBinding,
    build_worker,
    ensure_toolchain,
)
from jetpack.shared.edge._deploy import deploy

DB_ID = "3f2b9c4e-1d2a-4b6c-9e8f-0a1b2c3d4e5f"


@dataclass
class FakeWrangler:
    databases: list[dict[str, str]] = field(default_factory=list)
    indexes: list[dict[str, object]] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    envs: list[Mapping[str, str]] = field(default_factory=list)
    secrets: list[dict[str, str]] = field(default_factory=list)
    secret_modes: list[int] = field(default_factory=list)

    def __call__(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], stdin: str | None
    ) -> tuple[int, str]:
        args = list(argv[2:])  # drop node and wrangler.js
        self.calls.append(args)
        self.envs.append(env)
        if args[:3] == ["d1", "list", "--json"]:
            return 0, json.dumps(self.databases)
        if args[:2] == ["d1", "create"]:
            self.databases.append({"uuid": DB_ID, "name": args[2]})
            return 0, (
                "✅ Successfully created DB 'jetpack'\n\n"
                '{\n  "d1_databases": [\n    {\n      "binding": "DB",\n'
                f'      "database_name": "{args[2]}",\n'
                f'      "database_id": "{DB_ID}"\n    }}\n  ]\n}}\n'
            )
        if args[:3] == ["vectorize", "list", "--json"]:
            return 0, json.dumps(self.indexes)
        if args[:2] == ["vectorize", "create"]:
            self.indexes.append({"name": args[2]})
            return 0, "created"
        if args[:3] == ["d1", "migrations", "apply"]:
            return 0, "Migrations applied"
        if args[0] == "deploy":
            path = Path(args[args.index("--secrets-file") + 1])
            self.secret_modes.append(stat.S_IMODE(path.stat().st_mode))
            self.secrets.append(json.loads(path.read_text(encoding="utf-8")))
            return (
                0,
                "Uploaded jetpack\nDeployed jetpack triggers\n  https://jetpack.acme.workers.dev\n",
            )
        return 1, f"unexpected: {args}"


ENV = {
    "CLOUDFLARE_API_TOKEN": "cf-account-token",
    "JETPACK_API_TOKEN": "jp_project",
    "PATH": "/usr/bin",
}


def test_first_deploy_creates_what_is_missing_then_deploys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toolchain = ensure_toolchain()
    package = tmp_path / "src" / "jp_vectors_deploy"
    (package / "worker").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "worker" / "routes.ts").write_text("export default {};\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    memory = EdgeModule(
        name="vectors",
        package="jp_vectors_deploy",
        vectorize=[VectorizeBinding("VECTORS", "jetpack-memories", 384)],
    )
    built = build_worker(tmp_path / "w", modules=[memory])
    fake = FakeWrangler()
    lines: list[str] = []
    result = deploy(
        built, toolchain, admin_token="jpa_admin", env=ENV, runner=fake, say=lines.append
    )
    assert [c[:2] for c in fake.calls] == [
        ["d1", "list"],
        ["d1", "create"],
        ["vectorize", "list"],
        ["vectorize", "create"],
        ["d1", "migrations"],
        ["deploy", "--secrets-file"],
    ]
    assert fake.calls[3][2:] == ["jetpack-memories", "--dimensions=384", "--metric=cosine"]
    assert fake.calls[4] == ["d1", "migrations", "apply", "DB", "--remote"]
    assert result.database_id == DB_ID and result.url == "https://jetpack.acme.workers.dev"
    assert built.config()["d1_databases"][0]["database_id"] == DB_ID
    assert fake.secrets == [{"JETPACK_ADMIN_TOKEN": "jpa_admin"}] and fake.secret_modes == [0o600]
    for env in fake.envs:
        assert env["CLOUDFLARE_API_TOKEN"] == "cf-account-token"
        assert "JETPACK_API_TOKEN" not in env and "JETPACK_ADMIN_TOKEN" not in env
    assert all("jpa_admin" not in line for line in lines + result.commands)


def test_an_upgrade_reuses_the_database_and_only_migrates_and_deploys(tmp_path: Path) -> None:
    toolchain = ensure_toolchain()
    fake = FakeWrangler(databases=[{"uuid": DB_ID, "name": "jetpack"}])
    built = build_worker(tmp_path / "w", modules=[])
    deploy(built, toolchain, admin_token="t", env=ENV, runner=fake, say=lambda line: None)
    assert [c[:2] for c in fake.calls] == [
        ["d1", "list"],
        ["d1", "migrations"],
        ["deploy", "--secrets-file"],
    ]
    known = build_worker(tmp_path / "k", BuildOptions(database_id=DB_ID), modules=[])
    fake.calls.clear()
    deploy(known, toolchain, admin_token="t", env=ENV, runner=fake, say=lambda line: None)
    assert [c[:2] for c in fake.calls] == [["d1", "migrations"], ["deploy", "--secrets-file"]]


def test_a_failed_step_stops_the_deploy_naming_it(tmp_path: Path) -> None:
    toolchain = ensure_toolchain()

    def broken(
        argv: Sequence[str], cwd: Path, env: Mapping[str, str], stdin: str | None
    ) -> tuple[int, str]:
        return (1, "Authentication error [code: 10000]") if "migrations" in argv else (0, "[]")

    built = build_worker(tmp_path / "w", BuildOptions(database_id=DB_ID), modules=[])
    with pytest.raises(ToolchainError, match="Applying D1 migrations failed"):
        deploy(built, toolchain, admin_token="t", env=ENV, runner=broken, say=lambda line: None)
