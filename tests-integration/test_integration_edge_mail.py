"""Edge mail through the registry and the CLI: two project folders (two "machines") share
one project's mailbox and leases on one Worker (workerd), found by config alone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from jetpack.shared import Message, MessageType
from jetpack.shared.config import load_config
from jetpack.shared.registry import create_store, discover_backends
from jetpack.shared.testing import eventually
from jetpack.shared.testing.edge import EdgeProject, edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]

Cli = Callable[..., subprocess.CompletedProcess[str]]
"""The ``cli`` fixture (tests-integration/conftest.py): ``cli(folder, env, *args)``."""


def test_the_cloudflare_mail_backend_is_registered() -> None:
    names = {b.name: b.distribution for b in discover_backends()}
    assert names["mail.cloudflare"] == "jetpack-cf-mail"


async def test_two_project_folders_share_one_mailbox_and_its_leases(
    tmp_path: Path, edge_project: EdgeProject, cli: Cli
) -> None:
    env = {
        "JETPACK_MAIL_BACKEND": "cloudflare",
        "JETPACK_WORKER_URL": edge_project.url,
        "JETPACK_API_TOKEN": edge_project.token,
    }
    laptop, runner = tmp_path / "laptop", tmp_path / "ci-runner"
    for folder in (laptop, runner):
        folder.mkdir()
        assert cli(folder, env, "init").returncode == 0
    heard: list[Message] = []
    listener = create_store(load_config(runner, env=env), "mail", agent_id="agent-ci")
    listener.subscribe(MessageType.TASK_CREATED, heard.append)
    async with listener:
        sent = cli(laptop, env, "mail", "send", "*", "new work", "--type", "task.created")
        assert sent.returncode == 0, sent.stderr
        assert await eventually(lambda: len(heard) == 1, timeout=30)
        assert heard[0].payload == {"text": "new work"} and heard[0].from_agent == "cli"
        direct = cli(laptop, env, "mail", "send", "agent-ci", "please review")
        assert direct.returncode == 0, direct.stderr
        inbox = await listener.fetch_inbox()
        assert [m.payload for m in inbox] == [{"text": "please review"}]
        assert await listener.acquire_lease("src/edge/**", 600_000)
        shown = cli(laptop, env, "mail", "leases", "--json")
        assert shown.returncode == 0, shown.stderr
        leases = json.loads(shown.stdout)
        assert [(le["path"], le["agent_id"]) for le in leases] == [("src/edge/**", "agent-ci")]
    listed = cli(laptop, env, "mail", "leases", "--json")
    assert json.loads(listed.stdout) == [], "the bus's shutdown released its lease"
