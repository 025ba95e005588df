"""Edge stores through the registry and the CLI: two project folders (two "machines") share
one task graph on one Worker (workerd), found by config alone."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from jetpack.shared.config import load_config
from jetpack.shared.registry import create_store, discover_backends
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker, edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]

Cli = Callable[..., subprocess.CompletedProcess[str]]
"""The ``cli`` fixture (tests-integration/conftest.py): ``cli(folder, env, *args)``."""


def test_the_cloudflare_task_backend_is_registered() -> None:
    names = {b.name: b.distribution for b in discover_backends()}
    assert names["tasks.cloudflare"] == "jetpack-cf-beads"


async def test_two_project_folders_share_one_edge_project(
    tmp_path: Path, edge_project: EdgeProject, cli: Cli
) -> None:
    env = {
        "JETPACK_TASKS_BACKEND": "cloudflare",
        "JETPACK_WORKER_URL": edge_project.url,
        "JETPACK_API_TOKEN": edge_project.token,
    }
    first, second = tmp_path / "laptop", tmp_path / "ci-runner"
    for folder in (first, second):
        folder.mkdir()
        assert cli(folder, env, "init").returncode == 0
    added = cli(first, env, "task", "add", "Ship the edge", "-p", "high")
    assert added.returncode == 0, added.stderr
    listed = cli(second, env, "task", "list")
    assert listed.returncode == 0 and "Ship the edge" in listed.stdout
    config = load_config(second, env=env)
    async with create_store(config, "tasks") as store:
        claimed = await store.claim_next("agent-on-ci")
        assert claimed is not None and claimed.title == "Ship the edge"
        await store.complete_task(claimed.id, "agent-on-ci")
    shown = cli(first, env, "task", "list", "--status", "completed")
    assert shown.returncode == 0 and "Ship the edge" in shown.stdout, shown.stdout + shown.stderr


def test_a_wrong_token_is_one_clear_line(tmp_path: Path, edge_worker: EdgeWorker, cli: Cli) -> None:
    env = {
        "JETPACK_TASKS_BACKEND": "cloudflare",
        "JETPACK_WORKER_URL": edge_worker.url,
        "JETPACK_API_TOKEN": "jp_not-a-token",
    }
    assert cli(tmp_path, env, "init").returncode == 0
    result = cli(tmp_path, env, "task", "list")
    assert result.returncode == 1
    assert "refused the token" in result.stderr and "jp_not-a-token" not in result.stderr
    assert "Traceback" not in result.stderr
