"""``jetpack edge build|dev|deploy|token`` as a user runs them, in a directory without ``init``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jetpack.cf_beads import CloudflareTaskStore
from jetpack.shared.edge import discover_modules

JETPACK = [sys.executable, "-m", "jetpack.cli"]

INSTALLED = [m.name for m in discover_modules()]
"""The modules of every installed cf package (tasks, and memory where jetpack-cf-cass is)."""


def jetpack(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JETPACK, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().split(")")[-1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        nxt = children.get(frontier.pop(), [])
        found.update(nxt)
        frontier.extend(nxt)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Dev:
    """A running `jetpack edge dev`."""

    def __init__(self, cwd: Path, persist: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "JETPACK_ADMIN_TOKEN"}
        self.proc = subprocess.Popen(
            [*JETPACK, "edge", "dev", "--port", "0", "--persist-to", str(persist)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 300
        self.url = ""
        for line in self.proc.stdout:
            match = re.match(r"^Ready on (http://127\.0\.0\.1:\d+)$", line.strip())
            if match:
                self.url = match.group(1)
                break
            assert time.monotonic() < deadline
        assert self.url, (
            f"no Ready line; stderr: {self.proc.stderr.read() if self.proc.stderr else ''}"
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        tree = descendants(self.proc.pid)
        assert tree, "wrangler and workerd run under the dev command"
        self.proc.send_signal(sig)
        assert self.proc.wait(60) == 0
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        deadline = time.monotonic() + 20
        while any(alive(p) for p in tree):
            assert time.monotonic() < deadline, "children outlived jetpack edge dev"
            time.sleep(0.1)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    cwd = tmp_path / "anywhere"
    cwd.mkdir()
    return cwd


def test_build_writes_a_checked_worker_folder(workdir: Path) -> None:
    out = workdir / "built"
    result = jetpack(workdir, "edge", "build", "--out", str(out), "--check", "--rate-limit", "50")
    assert result.returncode == 0, result.stderr
    assert f"modules: {', '.join(INSTALLED)}" in result.stdout
    config = json.loads((out / "wrangler.jsonc").read_text(encoding="utf-8"))
    assert config["ratelimits"][0]["simple"]["limit"] == 50
    assert config["observability"] == {"enabled": True}  # a deployable build keeps its traces
    assert (out / "src" / "modules" / "tasks" / "routes.ts").exists()
    assert (out / "migrations" / "tasks" / "0001_init.sql").exists()


async def _create_and_claim(url: str, token: str) -> str:
    async with CloudflareTaskStore(url, token) as store:
        task = await store.create_task({"title": "survives"})
        await store.claim_task(task.id, "agent-1")
        return task.id


async def _holder(url: str, token: str, task_id: str) -> str | None:
    async with CloudflareTaskStore(url, token) as store:
        task = await store.get_task(task_id)
        return None if task is None else task.assigned_agent


def test_dev_serves_tokens_work_and_state_survives_a_restart(workdir: Path) -> None:
    persist = workdir / "state"
    dev = Dev(workdir, persist)
    try:
        assert httpx.get(f"{dev.url}/api/health").json()["modules"] == INSTALLED
        built = workdir / ".jetpack" / "edge" / "worker" / "wrangler.jsonc"
        local = json.loads(built.read_text(encoding="utf-8"))
        assert local["observability"] == {"enabled": False}, "no traces to pay for locally"
        admin_file = workdir / ".jetpack" / "edge" / "admin-token"
        assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
        created = jetpack(workdir, "edge", "token", "create", "--project", "demo", "--url", dev.url)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        token_id = re.search(r"token id: (\S+)", created.stdout)
        assert token.startswith("jp_") and token_id
        bound = jetpack(
            workdir,
            "edge",
            "token",
            "create",
            "--project",
            "demo",
            "--agent",
            "a1",
            "--expires",
            "2h",
            "--url",
            dev.url,
        )
        assert bound.returncode == 0 and "acts only as agent: a1" in bound.stdout
        listed = jetpack(workdir, "edge", "token", "list", "--url", dev.url)
        assert token_id.group(1) in listed.stdout and token not in listed.stdout
        task_id = asyncio.run(_create_and_claim(dev.url, token))
    finally:
        dev.stop()
    dev = Dev(workdir, persist)
    try:
        assert asyncio.run(_holder(dev.url, token, task_id)) == "agent-1"
        revoked = jetpack(workdir, "edge", "token", "revoke", token_id.group(1), "--url", dev.url)
        assert revoked.returncode == 0
        assert (
            httpx.get(
                f"{dev.url}/api/tasks", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 401
        )
    finally:
        dev.stop(signal.SIGINT)  # Ctrl-C


def test_token_commands_without_a_worker_fail_in_one_line(workdir: Path) -> None:
    result = jetpack(workdir, "edge", "token", "list", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "did not answer" in result.stderr and "Traceback" not in result.stderr


def test_deploy_dry_run_lists_the_steps_and_bundles(workdir: Path) -> None:
    result = jetpack(workdir, "edge", "deploy", "--dry-run", "--name", "jp-test")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    order = [
        "wrangler d1 list --json",
        "wrangler d1 create jetpack",
        "wrangler d1 migrations apply DB --remote",
        "wrangler deploy --dry-run",
    ]
    positions = [out.index(step) for step in order]
    assert positions == sorted(positions)
    bundle = workdir / ".jetpack" / "edge" / "deploy" / "dist" / "index.js"
    assert bundle.exists() and "createWorker" not in bundle.read_text(encoding="utf-8")[:0]
    config = json.loads((bundle.parent.parent / "wrangler.jsonc").read_text(encoding="utf-8"))
    assert config["name"] == "jp-test"


def test_deploy_needs_cloudflares_token_never_jetpacks(workdir: Path) -> None:
    env = {"CLOUDFLARE_API_TOKEN": "", "JETPACK_API_TOKEN": "jp_project-token"}
    missing = jetpack(workdir, "edge", "deploy", env=env)
    assert missing.returncode == 1 and "CLOUDFLARE_API_TOKEN is not set" in missing.stderr
    same = jetpack(
        workdir,
        "edge",
        "deploy",
        env={"CLOUDFLARE_API_TOKEN": "jp_project-token", "JETPACK_API_TOKEN": "jp_project-token"},
    )
    assert same.returncode == 1 and "equals JETPACK_API_TOKEN" in same.stderr
    assert "jp_project-token" not in missing.stderr + same.stderr
