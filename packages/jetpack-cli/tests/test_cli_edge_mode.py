"""Edge mode as a user runs it: init --edge, login, doctor, every command on a real Worker.

The Worker is the session's workerd (``jetpack.shared.testing.edge``); each test
gets a fresh project and token on it. Every command runs as a real ``jetpack``
process with its own ``XDG_CONFIG_HOME`` (where ``jetpack edge login`` keeps
the token), and with none of the caller's ``JETPACK_*`` variables.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jetpack.cli.mcp import mcp_config_for
from jetpack.shared.config import load_config
from jetpack.shared.credentials import Credential, credentials_path, save_credential
from jetpack.shared.registry import create_store, discover_backends
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker, edge_project, edge_worker

__all__ = ["edge_project", "edge_worker"]

HERE = Path(__file__).parent
FAKE_AGENT = HERE / "mcp" / "fake_mcp_agent.py"
HIDE = (
    "import importlib.metadata as m, sys\n"
    "real = m.entry_points\n"
    "def entry_points(**kw):\n"
    "    return m.EntryPoints([e for e in real(**kw) if e.name != {name!r}])\n"
    "m.entry_points = entry_points\n"
    "from jetpack.cli.__main__ import main\n"
    "sys.argv = ['jetpack', *sys.argv[1:]]\n"
    "main()\n"
)
"""Python code running ``jetpack`` with one backend's entry point hidden (not installed)."""


class Cli:
    """``jetpack`` as a separate process, in a project folder, with a private config home."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JETPACK_")}
        self.env.update({"XDG_CONFIG_HOME": str(home), "COLUMNS": "250"})

    @property
    def credentials(self) -> Path:
        path = credentials_path(self.env)
        assert path is not None
        return path

    def __call__(
        self,
        *args: str,
        ok: bool | None = True,
        stdin: str | None = None,
        cwd: Path | None = None,
        hide: str | None = None,
        timeout: float = 180,
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        program = ["-c", HIDE.format(name=hide)] if hide else ["-m", "jetpack.cli"]
        proc = subprocess.run(
            [sys.executable, *program, *args],
            cwd=cwd or self.root,
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=timeout,
            check=False,
        )
        if ok is not None and (proc.returncode == 0) != ok:
            raise AssertionError(
                f"jetpack {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    root = tmp_path / "proj"
    root.mkdir()
    return Cli(root, tmp_path / "xdg")


def edge_tasks(project: EdgeProject) -> list[Any]:
    """The project's tasks, read straight from the Worker."""
    from jetpack.cf_beads import CloudflareTaskStore

    async def read() -> list[Any]:
        async with CloudflareTaskStore(project.url, project.token) as store:
            return list(await store.list_tasks())

    return asyncio.run(read())


def call(project: EdgeProject, method: str, path: str, token: str, body: Any = None) -> Any:
    with httpx.Client(base_url=project.url, timeout=60) as http:
        return http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


def files_holding(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret``."""
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def edge_backends() -> list[str]:
    """The stores whose Cloudflare backend is installed (cf-beads; cf-mail and cf-cass later)."""
    names = {info.name for info in discover_backends()}
    return [s for s in ("tasks", "mail", "memory") if f"{s}.cloudflare" in names]


# ------------------------------------------------------------------ init --edge, login


def test_init_edge_writes_the_edge_config_and_login_keeps_the_token_outside(
    cli: Cli, edge_project: EdgeProject
) -> None:
    url = edge_project.url
    first = cli("init", "--edge", url + "/", "--local", "mail", "--local", "memory")
    assert "jetpack edge login" in first.stdout  # no token yet: what to do next
    config = tomllib.loads((cli.root / ".jetpack" / "config.toml").read_text())
    assert config["mode"] == "edge" and config["cloudflare"] == {"worker_url": url}
    assert config["stores"] == {"mail": "local", "memory": "local"}
    assert not (cli.root / ".beads").exists(), "the task store is on the edge"

    login = cli("edge", "login", "--token-stdin", stdin=edge_project.token + "\n")
    assert f"project {edge_project.project}, token {edge_project.token_id}" in login.stdout
    assert edge_project.token not in login.stdout + login.stderr
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert not files_holding(cli.root, edge_project.token), "a token in the project"
    assert cli.credentials.is_relative_to(cli.env["XDG_CONFIG_HOME"])

    cli("task", "add", "from a logged-in CLI")
    assert [t.title for t in edge_tasks(edge_project)] == ["from a logged-in CLI"]

    refused = cli("config", "set", "cloudflare.api_token", "jp_x", ok=False)
    assert "jetpack edge login" in refused.stderr and "nothing written" in refused.stderr
    assert "api_token" not in (cli.root / ".jetpack" / "config.toml").read_text()

    # Mail to the edge too, without its backend: the config is written, the fix named.
    again = cli("init", "--edge", url, "--local", "memory", ok=False, hide="mail.cloudflare")
    assert "set the edge keys" in again.stdout and "pip install jetpack-cf-mail" in again.stderr
    assert "config.toml is written" in again.stderr
    config = tomllib.loads((cli.root / ".jetpack" / "config.toml").read_text())
    assert config["stores"] == {"memory": "local"} and "agents" in config

    bad = cli("init", "--edge", "ftp://nowhere", ok=False)
    assert "--edge" in bad.stderr
    assert cli("init", "--local", "mail", ok=False).returncode == 2


def test_login_refuses_bad_tokens_and_stores_nothing(
    cli: Cli, edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    url = edge_project.url
    wrong = cli("edge", "login", "--url", url, "--token-stdin", ok=False, stdin="jp_not-a-token")
    assert "refused this token" in wrong.stderr and "nothing stored" in wrong.stderr
    assert "jetpack edge token create" in wrong.stderr
    bound = edge_worker.new_project(edge_project.project, agent_id="agent-1")
    agent = cli("edge", "login", "--url", url, "--token-stdin", ok=False, stdin=bound.token)
    assert "bound to agent 'agent-1'" in agent.stderr
    admin = cli(
        "edge", "login", "--url", url, "--token-stdin", ok=False, stdin=edge_worker.admin_token
    )
    assert "project token" in admin.stderr and "nothing stored" in admin.stderr
    down = cli(
        "edge", "login", "--url", "http://127.0.0.1:9", "--token-stdin", ok=False, stdin="jp_x"
    )
    assert "did not answer" in down.stderr and "nothing stored" in down.stderr
    assert cli("edge", "login", "--url", url, "--token-stdin", ok=False, stdin=" ").returncode == 1
    assert cli("edge", "login", ok=False, stdin="x").stderr.count("--url") == 1  # no URL known
    assert not cli.credentials.exists()
    for proc in (wrong, agent, admin, down):
        assert "Traceback" not in proc.stderr
        assert bound.token not in proc.stderr and edge_worker.admin_token not in proc.stderr


def test_login_prompt_hides_the_token_and_logout_forgets_it(
    cli: Cli, edge_project: EdgeProject
) -> None:
    url = edge_project.url
    # A real terminal: pty.spawn in a fresh process gives the command a controlling tty.
    spawn = "import pty, sys; pty.spawn(sys.argv[1:])"
    command = [sys.executable, "-c", spawn, sys.executable, "-m", "jetpack.cli"]
    proc = subprocess.Popen(
        [*command, "edge", "login", "--url", url],
        cwd=cli.root,
        env=cli.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + 120
    while b"input hidden" not in seen:
        assert time.monotonic() < deadline, seen
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, seen
        seen += chunk
    time.sleep(0.3)  # the prompt is out; echo is off once getpass reads
    proc.stdin.write(edge_project.token.encode() + b"\n")
    proc.stdin.flush()
    rest, _ = proc.communicate(timeout=120)
    screen = (seen + rest).decode(errors="replace")
    assert proc.returncode == 0, screen
    assert "logged in to" in screen and edge_project.token not in screen
    saved = load_config(cli.root, {**cli.env, "JETPACK_WORKER_URL": url})
    assert saved.cloudflare.api_token is not None
    assert saved.cloudflare.api_token.get_secret_value() == edge_project.token

    out = cli("edge", "logout", "--url", url)
    assert "forgot the token" in out.stdout and not cli.credentials.exists()
    assert "no token saved" in cli("edge", "logout", "--url", url).stdout
    piped = cli("edge", "login", "--url", url, ok=False, stdin="")  # no tty, no --token-stdin
    assert "--token-stdin" in piped.stderr


# ------------------------------------------------------------------ every command on the edge


def test_edge_mode_runs_task_status_mcp_and_start_on_the_worker(
    cli: Cli, tmp_path: Path, edge_project: EdgeProject
) -> None:
    url, token = edge_project.url, edge_project.token
    cli.env["JETPACK_API_TOKEN"] = token  # as CI sets it
    cli("init", "--edge", url, "--local", "mail", "--local", "memory", "--executor", "demo")
    first = cli("task", "add", "design").stdout.strip()
    second = cli("task", "add", "build", "--dep", first).stdout.strip()
    assert {t.id for t in edge_tasks(edge_project)} == {first, second}
    assert not (cli.root / ".beads").exists()

    other = Cli(tmp_path / "other-machine", tmp_path / "xdg2")  # another CLI, same project
    other.root.mkdir()
    other("init", "--edge", url, "--local", "mail", "--local", "memory")
    other("edge", "login", "--token-stdin", stdin=token)
    listed = json.loads(other("task", "list", "--json").stdout)
    assert {t["id"] for t in listed} == {first, second}
    assert json.loads(cli("status", "--json").stdout)["total"] == 2

    server = [sys.executable, "-m", "jetpack.cli", "mcp"]
    config = json.dumps(mcp_config_for("agent-m", cli.root, server, ["JETPACK_API_TOKEN"]))
    agent = subprocess.run(
        [sys.executable, str(FAKE_AGENT), "--mcp-config", config, "--tool", "tasks"],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=120,
        check=False,
    )
    assert agent.returncode == 0, agent.stderr
    shown = json.loads(json.loads(agent.stdout)["text"])
    assert first in json.dumps(shown), "the MCP server reads the edge tasks"

    cli("start", "--until-empty", "-n", "2", "--no-live")
    done = {t.id: t.status.value for t in edge_tasks(edge_project)}
    assert done == {first: "completed", second: "completed"}


def _store_on_edge(cli: Cli, store: str, project: EdgeProject) -> bool:
    """Whether the edge side of ``store`` holds what the run wrote."""
    config = load_config(cli.root, cli.env)

    async def look() -> bool:
        async with create_store(config, store) as opened:  # type: ignore[arg-type]
            if store == "tasks":
                return len(await opened.list_tasks()) == 4
            if store == "memory":
                return bool((await opened.get_stats()).total)
            return bool(await opened.list_agents(include_offline=True))

    return asyncio.run(look())


MIXES = sorted({(s,) for s in edge_backends()} | {tuple(edge_backends())})


@pytest.mark.parametrize("on_edge", MIXES, ids=lambda mix: "+".join(mix) + "-on-edge")
def test_mixed_stores_run_the_demo_graph(
    cli: Cli, on_edge: tuple[str, ...], edge_project: EdgeProject
) -> None:
    cli.env.update(
        {"JETPACK_WORKER_URL": edge_project.url, "JETPACK_API_TOKEN": edge_project.token}
    )
    for store in on_edge:
        cli.env[f"JETPACK_{store.upper()}_BACKEND"] = "cloudflare"
    cli("init", "--executor", "demo")
    a = cli("task", "add", "root").stdout.strip()
    b = cli("task", "add", "left", "--dep", a).stdout.strip()
    c = cli("task", "add", "right", "--dep", a).stdout.strip()
    d = cli("task", "add", "join", "--dep", b, "--dep", c).stdout.strip()
    run = cli("start", "--until-empty", "-n", "3", "--no-live")
    assert "4 completed" in run.stdout, run.stdout
    order = [p[3] for p in map(str.split, run.stdout.splitlines()) if p[1:2] == ["completed"]]
    assert sorted(order) == sorted([a, b, c, d]), run.stdout
    assert order.index(a) < min(order.index(b), order.index(c)) < order.index(d)
    for store in on_edge:
        assert _store_on_edge(cli, store, edge_project), store
    local = {"tasks": cli.root / ".beads", "mail": cli.root / ".mail", "memory": cli.root / ".cass"}
    for store, folder in local.items():
        assert folder.exists() == (store not in on_edge), store


def test_errors_name_the_fix_missing_backend_token_or_refused_token(
    cli: Cli, edge_project: EdgeProject
) -> None:
    url = edge_project.url
    cli("init", "--edge", url, "--local", "mail", "--local", "memory", "--executor", "demo")
    hidden = cli("task", "list", ok=False, hide="tasks.cloudflare")
    assert "pip install jetpack-cf-beads" in hidden.stderr
    assert "pip install 'jetpack-cli[cloudflare]'" in hidden.stderr
    no_token = cli("task", "list", ok=False)
    assert "jetpack edge login" in no_token.stderr and "JETPACK_API_TOKEN" in no_token.stderr
    mcp = cli("mcp", ok=False, stdin="")
    assert mcp.returncode == 2 and "jetpack edge login" in mcp.stderr

    save_credential(Credential(url, "jp_revoked-or-wrong"), cli.env)
    refused = cli("task", "list", ok=False)
    assert f"the token came from {cli.credentials}" in refused.stderr
    assert f"jetpack edge login --url {url}" in refused.stderr
    assert "jp_revoked-or-wrong" not in refused.stderr
    assert "Traceback" not in refused.stderr + no_token.stderr + hidden.stderr
    cli("task", "list", JETPACK_API_TOKEN=edge_project.token)  # the variable wins over the file


# ------------------------------------------------------------------ doctor


def test_doctor_on_a_local_project(cli: Cli) -> None:
    cli("init", "--executor", "demo")
    out = cli("doctor").stdout
    assert out.splitlines()[-1] == "tasks local, mail local, memory local: all good"
    for store in ("tasks", "mail", "memory"):
        assert f"{store}" in out
    assert "local: jetpack-beads" in out and "mode local, from .jetpack/config.toml" in out
    assert "worker" not in out.split("executor")[0], "no Worker needed, none checked"
    report = json.loads(cli("doctor", "--json").stdout)
    assert report["ok"] and report["backends"] == {
        "tasks": "local",
        "mail": "local",
        "memory": "local",
    }


def test_hybrid_mode_says_its_stores_are_local_and_unsynced(cli: Cli) -> None:
    cli("init", "--executor", "demo")
    listed = cli("task", "list", JETPACK_MODE="hybrid")
    assert "mode hybrid" in listed.stderr and "not built yet" in listed.stderr
    out = cli("doctor", JETPACK_MODE="hybrid").stdout
    assert "! mode" in out and "not built yet" in out
    assert "local: jetpack-beads" in out
    # every store placed by [stores]: the mode decides nothing, nothing to warn about
    pinned = {f"JETPACK_{s.upper()}_BACKEND": "local" for s in ("tasks", "mail", "memory")}
    quiet = cli("task", "list", JETPACK_MODE="hybrid", **pinned)
    assert "hybrid" not in quiet.stderr
    assert "hybrid" not in cli("task", "list").stderr


def test_doctor_on_the_edge_says_why_and_where_never_the_token(
    cli: Cli, edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    url = edge_project.url
    cli("init", "--edge", url, "--local", "mail", "--local", "memory", "--executor", "demo")
    missing = cli("doctor", ok=False)
    assert (
        "no project token" in missing.stdout and f"jetpack edge login --url {url}" in missing.stdout
    )
    assert missing.stdout.splitlines()[-1].endswith("1 problem (first: token)")

    cli("edge", "login", "--token-stdin", stdin=edge_project.token)
    out = cli("doctor", JETPACK_MAIL_BACKEND="local").stdout
    assert "cloudflare: jetpack-cf-beads" in out and "mode edge, from .jetpack/config.toml" in out
    assert "[stores] mail = local, from JETPACK_MAIL_BACKEND" in out
    assert f"project {edge_project.project}, token {edge_project.token_id}" in out
    assert f"from credentials file {cli.credentials}" in out and "tasks module" in out
    assert edge_project.token not in out and "all good" in out

    from_env = json.loads(cli("doctor", "--json", JETPACK_API_TOKEN=edge_project.token).stdout)
    token = next(c for c in from_env["checks"] if c["section"] == "worker" and c["name"] == "token")
    assert "from JETPACK_API_TOKEN" in token["detail"] and from_env["ok"]
    assert edge_project.token not in json.dumps(from_env)

    bound = edge_worker.new_project(edge_project.project, agent_id="agent-9")
    agent = cli("doctor", ok=False, JETPACK_API_TOKEN=bound.token)
    assert "acts only as agent 'agent-9'" in agent.stdout
    refused = cli("doctor", ok=False, JETPACK_API_TOKEN="jp_wrong")
    assert "refused the token from JETPACK_API_TOKEN" in refused.stdout
    down = cli("doctor", ok=False, JETPACK_WORKER_URL="http://127.0.0.1:9")
    assert "no project token for http://127.0.0.1:9" in down.stdout  # saved for the real URL
    assert "did not answer" in down.stdout and "2 problems" in down.stdout
    down = cli("doctor", ok=False, JETPACK_WORKER_URL="http://127.0.0.1:9", JETPACK_API_TOKEN="x")
    assert "did not answer" in down.stdout and "1 problem" in down.stdout
    hidden = cli("doctor", ok=False, hide="tasks.cloudflare")
    assert "not installed" in hidden.stdout and "fix: pip install jetpack-cf-beads" in hidden.stdout
    for proc in (agent, refused, down, hidden):
        assert bound.token not in proc.stdout and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ demo


def test_demo_never_writes_into_the_edge_project(cli: Cli, edge_project: EdgeProject) -> None:
    cli.env.update(
        {
            "JETPACK_MODE": "edge",
            "JETPACK_WORKER_URL": edge_project.url,
            "JETPACK_API_TOKEN": edge_project.token,
        }
    )
    demo = cli("demo", "--no-live", "-n", "3", timeout=300)
    assert "JETPACK_MODE=edge is set" in demo.stdout and "throw-away local project" in demo.stdout
    assert "9/9 tasks completed" in demo.stdout
    assert edge_tasks(edge_project) == []
    cli("init", "--edge", edge_project.url, "--local", "mail", "--local", "memory")
    refused = cli("demo", "--dir", str(cli.root), ok=False)
    assert "already holds a Jetpack project" in refused.stderr
    assert edge_tasks(edge_project) == []


# ------------------------------------------------------------------ agent-bound tokens

PROBE = """\
import json, pathlib, sys, time
import httpx
import os

out, url = pathlib.Path(sys.argv[1]), sys.argv[2]
token, agent = os.environ["JETPACK_API_TOKEN"], os.environ["JETPACK_AGENT_ID"]
task = os.environ["JETPACK_TASK_ID"]
with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
    me = http.get("/api/whoami").json()
    mine = http.post(f"/api/tasks/{task}/renew", json={"agent_id": agent}).status_code
    other = http.post(f"/api/tasks/{task}/renew", json={"agent_id": "intruder"}).status_code
    mint = http.post("/api/tokens", json={"agent_id": "intruder"}).status_code
seen = {"agent": agent, "token": token, "me": me, "mine": mine, "other": other, "mint": mint}
(out / (task + ".json")).write_text(json.dumps(seen))
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
"""
"""A task command: what its agent token may do, written to OUT/<task>.json, then a nap."""


def agent_tokens_of(project: EdgeProject) -> list[dict[str, Any]]:
    answer = call(project, "GET", "/api/tokens", project.token)
    assert answer.status_code == 200, answer.text
    return [t for t in answer.json()["tokens"] if t["agent_id"] is not None]


@pytest.fixture
def probe(tmp_path: Path) -> tuple[Path, Path]:
    script, out = tmp_path / "probe.py", tmp_path / "seen"
    script.write_text(PROBE)
    out.mkdir()
    return script, out


def test_each_agent_gets_a_token_acting_only_as_itself_revoked_after_the_run(
    cli: Cli, probe: tuple[Path, Path], edge_project: EdgeProject
) -> None:
    script, out = probe
    cli.env["JETPACK_API_TOKEN"] = edge_project.token
    cli("init", "--edge", edge_project.url, "--local", "mail", "--local", "memory")
    command = f"{sys.executable} {script} {out} {edge_project.url} 1"
    for n in range(3):
        cli("task", "add", f"probe {n}", "--command", command)
    run = cli("start", "--executor", "command", "--until-empty", "-n", "2", "--no-live")
    assert "3 completed" in run.stdout, run.stdout
    seen = [json.loads(p.read_text()) for p in sorted(out.iterdir())]
    assert len(seen) == 3
    by_agent: dict[str, set[str]] = {}
    for probe_run in seen:
        assert probe_run["token"] != edge_project.token
        assert probe_run["me"]["agent_id"] == probe_run["agent"]
        assert probe_run["me"]["project"] == edge_project.project
        assert (probe_run["mine"], probe_run["other"], probe_run["mint"]) == (200, 403, 403)
        by_agent.setdefault(probe_run["agent"], set()).add(probe_run["token"])
    assert all(len(tokens) == 1 for tokens in by_agent.values()), "one token per agent"
    assert len({t for tokens in by_agent.values() for t in tokens}) == len(by_agent)
    minted = agent_tokens_of(edge_project)
    assert {t["agent_id"] for t in minted} == set(by_agent)
    assert all(t["revoked_at"] is not None and t["expires_at"] for t in minted)
    for probe_run in seen:
        assert call(edge_project, "GET", "/api/whoami", probe_run["token"]).status_code == 401
    assert not files_holding(cli.root, seen[0]["token"])


def test_ctrl_c_revokes_the_agent_tokens(
    cli: Cli, probe: tuple[Path, Path], edge_project: EdgeProject
) -> None:
    script, out = probe
    cli.env["JETPACK_API_TOKEN"] = edge_project.token
    cli("init", "--edge", edge_project.url, "--local", "mail", "--local", "memory")
    cli("config", "set", "orchestrator.shutdown_grace_s", "1")
    cli(
        "task",
        "add",
        "long",
        "--command",
        f"{sys.executable} {script} {out} {edge_project.url} 120",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "jetpack.cli", "start", "--executor", "command", "--no-live"],
        cwd=cli.root,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(out.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    seen = json.loads(next(out.iterdir()).read_text())
    assert call(edge_project, "GET", "/api/whoami", seen["token"]).status_code == 200
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert call(edge_project, "GET", "/api/whoami", seen["token"]).status_code == 401
    assert all(t["revoked_at"] for t in agent_tokens_of(edge_project))


def test_claudes_mcp_server_acts_with_its_agents_token(
    cli: Cli, fake_claude: Path, edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    cli.env["PATH"] = f"{fake_claude.parent}{os.pathsep}{cli.env['PATH']}"
    cli.env["JETPACK_API_TOKEN"] = edge_project.token
    cli("init", "--edge", edge_project.url, "--local", "mail", "--local", "memory")
    task = cli("task", "add", "report progress fake:mcp=progress").stdout.strip()
    run = cli("start", "--executor", "claude", "--until-empty", "-n", "1", "--no-live")
    assert "1 completed" in run.stdout, run.stdout + run.stderr
    written = json.loads(next((cli.root / ".jetpack" / "mcp").iterdir()).read_text())
    env = written["mcpServers"]["jetpack"]["env"]
    assert env["JETPACK_API_TOKEN"] == "${JETPACK_API_TOKEN}", "passed by name, never written"
    minted = {t["id"]: t["agent_id"] for t in agent_tokens_of(edge_project)}
    status, answer = edge_worker.call(
        "GET", f"/api/audit?project={edge_project.project}&limit=1000"
    )
    assert status == 200
    renews = [e for e in answer["entries"] if e["path"] == f"/api/tasks/{task}/renew"]
    assert renews, "the MCP server renewed the claim (task progress)"
    assert {e["token_id"] for e in renews} <= set(minted), "with the agent's token"
    assert {e["agent_id"] for e in renews} == set(minted.values())


async def test_agent_tokens_are_reused_replaced_and_revoked_on_errors(
    tmp_path: Path, edge_worker: EdgeWorker, edge_project: EdgeProject
) -> None:
    from jetpack.cli import CommandExecutor, DemoExecutor
    from jetpack.cli._agent_tokens import TokenedExecutor, agent_tokens

    env = {
        "JETPACK_TASKS_BACKEND": "cloudflare",
        "JETPACK_WORKER_URL": edge_project.url,
        "JETPACK_API_TOKEN": edge_project.token,
    }
    config = load_config(tmp_path, env)
    async with agent_tokens(config, DemoExecutor()) as same:
        assert isinstance(same, DemoExecutor), "in-process executors start no child"
    async with agent_tokens(load_config(tmp_path, {}), CommandExecutor("true")) as local:
        assert isinstance(local, CommandExecutor), "no edge store: nothing to mint"

    def alive(token: str) -> bool:
        return call(edge_project, "GET", "/api/whoami", token).status_code == 200

    minted: list[str] = []

    async def failing_run() -> None:
        async with agent_tokens(config, CommandExecutor("true")) as wrapped:
            assert isinstance(wrapped, TokenedExecutor) and wrapped.name == "command"
            first = await wrapped.tokens.token_for("agent-1", 60)
            assert await wrapped.tokens.token_for("agent-1", 60) == first
            longer = await wrapped.tokens.token_for("agent-1", 4000)  # outlives the first
            assert longer != first and not alive(first) and alive(longer)
            minted.extend([longer, await wrapped.tokens.token_for("agent-2", 60)])
            assert "agent-1" not in repr(wrapped.tokens) and first not in repr(wrapped.tokens)
            raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError):
        await failing_run()
    assert len(minted) == 2 and not any(alive(token) for token in minted)

    bound = edge_worker.new_project(edge_project.project, agent_id="agent-1")
    config = load_config(tmp_path, {**env, "JETPACK_API_TOKEN": bound.token})
    from jetpack.cli import ExecutionRequest
    from jetpack.shared import Task

    async with agent_tokens(config, CommandExecutor("true")) as wrapped:
        now = datetime.now(UTC)
        task = Task.model_validate(
            {"id": "t-1", "title": "x", "created_at": now, "updated_at": now}
        )
        request = ExecutionRequest(task=task, prompt="", workdir=tmp_path, timeout_s=60)
        result = await wrapped.execute(request)
    assert not result.ok and result.fatal and "project token" in result.fatal
