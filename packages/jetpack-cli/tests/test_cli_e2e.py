"""End to end: the real `jetpack` command in subprocesses, on temp projects, real local stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jetpack.shared.config import dump_toml

FAST: dict[str, dict[str, Any]] = {
    "orchestrator": {
        "poll_s": 0.1,
        "heartbeat_s": 0.3,
        "shutdown_grace_s": 0.3,
        "kill_grace_s": 0.5,
        "claim_ttl_ms": 30_000,
        "lease_wait_s": 2.0,
    },
    "beads": {"retry_base_ms": 200},
    "cass": {"embedder": "none"},  # text search only: fast start-up (the demo keeps the default)
}


class Project:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jetpack.cli", "-C", str(self.root), *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"jetpack {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def add(self, title: str, *options: str) -> str:
        return self.run("task", "add", title, *options).stdout.strip()

    def claude_log(self) -> list[dict[str, Any]]:
        path = Path(self.env["FAKE_CLAUDE_LOG"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def project(tmp_path: Path, fake_claude: Path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    env = {
        **os.environ,
        "FAKE_CLAUDE_LOG": str(tmp_path / "claude.log"),
        "FAKE_CLAUDE_PIDS": str(tmp_path / "pids"),
    }
    env.pop("JETPACK_MODE", None)
    env["COLUMNS"] = "200"
    p = Project(root, env)
    p.run("init")
    config = root / ".jetpack" / "config.toml"
    data = tomllib.loads(config.read_text())
    for table, values in FAST.items():
        data.setdefault(table, {}).update(values)
    config.write_text(dump_toml(data))
    return p


def wait_for(check: Any, timeout: float = 20.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def test_start_status_sigint_restart_all_done_exactly_once(project: Project, alive: Any) -> None:
    first = project.add("Design fake:success")
    long = project.add("Long job fake:sleep=6")
    last = project.add("Wrap up fake:success", "--dep", first)
    runner = project.spawn("start", "--agents", "2", "--executor", "claude", "--no-live")
    try:
        # status (another process) sees the live agents and the running task
        status = wait_for(
            lambda: (
                (s := project.json("status"))
                and any(r["id"] == long for r in s["running"])
                and len(s["agents"]) >= 2
                and s
            ),
            30,
        )
        agents = {a["agent_id"]: a for a in status["agents"]}
        assert all(a["online"] for a in agents.values())
        # the agent on the task is shown busy, even before its next heartbeat says so
        assert any(
            a["info"].get("task_id") == long and a["status"] == "busy" for a in agents.values()
        )
        assert any(e["kind"] == "claimed" for e in status["events"])
        wait_for(
            lambda: any(e["event"] == "start" and e["task"] == long for e in project.claude_log())
        )
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=10)
    assert runner.returncode == 130, err
    assert "handed back" in out
    # the interrupted task is ready again, without a retry used, and its claude is gone
    task = json.loads(project.run("task", "show", long).stdout)
    assert task["status"] in ("ready", "pending") and task["retry_count"] == 0
    pids = [e["pid"] for e in project.claude_log() if e["task"] == long]
    assert pids and not any(alive(p) for p in pids)
    # restart: everything finishes, each task's claude succeeds exactly once
    done = project.run("start", "--agents", "2", "--until-empty", "--no-live", timeout=90)
    assert "0 failed" in done.stdout
    tasks = project.json("task", "list")
    assert {t["id"]: t["status"] for t in tasks} == {
        first: "completed",
        long: "completed",
        last: "completed",
    }
    finished = Counter(e["task"] for e in project.claude_log() if e["event"] == "done")
    assert finished == Counter({first: 1, long: 1, last: 1})
    # nothing of the first run was stranded or reported as running
    status = project.json("status")
    assert status["running"] == [] and status["tasks"]["completed"] == 3
    assert all(not a["online"] or a["status"] == "offline" for a in status["agents"])


def test_a_killed_run_leaves_no_agent_behind_and_its_task_is_recovered(
    project: Project, alive: Any
) -> None:
    project.run("config", "set", "orchestrator.claim_ttl_ms", "1500")
    long = project.add("Long job fake:sleep=60")
    runner = project.spawn("start", "--agents", "1", "--no-live")
    try:
        start = wait_for(
            lambda: next((e for e in project.claude_log() if e["event"] == "start"), None), 30
        )
        runner.kill()  # SIGKILL: no clean-up code runs in jetpack
        runner.communicate(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=10)
    wait_for(lambda: not alive(start["pid"]), 5)  # the agent's claude died with it
    time.sleep(1.6)  # the claim lapses (no renewals any more)
    task = json.loads(project.run("task", "show", long).stdout)
    assert task["status"] in ("claimed", "in_progress")  # as the crash left it
    project.run("task", "update", long, "--title", "Short job fake:success")
    done = project.run("start", "--agents", "1", "--until-empty", "--no-live", timeout=90)
    assert "recovered" in done.stdout
    task = json.loads(project.run("task", "show", long).stdout)
    assert task["status"] == "completed" and task["retry_count"] == 1


def test_two_start_processes_never_run_a_task_twice(project: Project) -> None:
    ids = [f"t{i}" for i in range(12)]
    issues = project.root / "issues.jsonl"
    issues.write_text(
        "".join(json.dumps({"id": i, "title": f"Task {i} fake:sleep=0.3"}) + "\n" for i in ids)
    )
    assert "imported 12 tasks" in project.run("task", "import", str(issues)).stdout
    runners = [
        project.spawn("start", "--agents", "2", "--until-empty", "--no-live") for _ in range(2)
    ]
    outputs = [r.communicate(timeout=120) for r in runners]
    for r, (out, err) in zip(runners, outputs, strict=True):
        assert r.returncode == 0, out + err
    starts = Counter(e["task"] for e in project.claude_log() if e["event"] == "start")
    assert starts == Counter({i: 1 for i in ids})
    tasks = project.json("task", "list")
    assert all(t["status"] == "completed" for t in tasks)
    runs = {t["metadata"]["result"]["agent_id"].split("-")[1] for t in tasks}
    assert len(runs) == 2, "both processes took work"


def test_failures_crash_garbage_and_timeout_end_failed_with_reasons(project: Project) -> None:
    crash = project.add("Crash fake:crash", "--max-retries", "0")
    garbage = project.add("Garbage fake:garbage", "--max-retries", "0")
    hang = project.add("Hang fake:hang", "--max-retries", "0", "--timeout", "1")
    flaky_ok = project.add("Ok fake:success", "--verify", "exit 0")
    result = project.run(
        "start", "--agents", "3", "--until-empty", "--no-live", check=False, timeout=90
    )
    assert result.returncode == 1, result.stdout + result.stderr
    tasks = {t["id"]: t for t in project.json("task", "list")}
    assert tasks[flaky_ok]["status"] == "completed"
    assert tasks[crash]["status"] == "failed" and "exited with code 3" in tasks[crash]["last_error"]
    assert "without a result line" in tasks[garbage]["last_error"]
    assert tasks[hang]["failure_type"] == "timeout"
    learned = project.run("memory", "search", "Crash").stdout
    assert "exited" in learned or "Crash" in learned


def test_agents_reach_the_stores_through_jetpack_mcp(project: Project) -> None:
    """Each claude agent gets `--mcp-config` for `jetpack mcp` under its own agent id."""
    task = project.add("Learn something fake:mcp")
    project.run("start", "--agents", "1", "--until-empty", "--no-live", timeout=90)
    tasks = {t["id"]: t for t in project.json("task", "list")}
    assert tasks[task]["status"] == "completed", tasks[task]
    configs = list((project.root / ".jetpack" / "mcp").glob("*.json"))
    assert len(configs) == 1
    server = json.loads(configs[0].read_text())["mcpServers"]["jetpack"]
    assert server["args"][-2:] == ["--agent-id", configs[0].stem]
    found = project.run("memory", "search", "learned via MCP").stdout
    assert task in found, found


def test_task_commands_and_jsonl_round_trip(project: Project, tmp_path: Path) -> None:
    a = project.add("Alpha", "-p", "high", "--skill", "python", "--tag", "x")
    b = project.add("Beta", "--dep", a, "-d", "needs alpha")
    ready = project.run("task", "ready").stdout
    assert a in ready and b not in ready
    project.run("task", "update", b, "--priority", "critical")
    project.run("task", "done", a)
    assert json.loads(project.run("task", "show", a).stdout)["status"] == "completed"
    export = tmp_path / "issues.jsonl"
    project.run("task", "export", str(export))
    issues = {i["id"]: i for i in map(json.loads, export.read_text().splitlines())}
    assert issues[b]["dependencies"][0]["depends_on_id"] == a and issues[b]["priority"] == 0
    assert issues[a]["status"] == "closed"
    other = Project(tmp_path / "other", project.env)
    other.root.mkdir()
    other.run("init")
    assert "imported 2 tasks" in other.run("task", "import", str(export)).stdout
    assert "skipped 2" in other.run("task", "import", str(export)).stdout
    again = {t["id"]: t for t in other.json("task", "list")}
    assert again[a]["status"] == "completed" and again[b]["dependencies"] == [a]
    assert again[b]["priority"] == "critical" and again[a]["required_skills"] == ["python"]
    project.run("task", "delete", b)
    assert project.run("task", "show", b, check=False).returncode == 1


def test_config_and_errors(project: Project) -> None:
    bad = project.run("config", "set", "agents.count", "0", check=False)
    assert bad.returncode == 1 and "agents.count" in bad.stderr
    project.run("config", "set", "claude.model", "sonnet")
    shown = project.run("config", "show").stdout
    assert 'model = "sonnet"' in shown and "count = 3" in shown
    missing = project.run("task", "show", "nope", check=False)
    assert missing.returncode == 1
    cycle = project.run("task", "add", "X", "--dep", "unknown-id", check=False)
    assert cycle.returncode == 1 and "error" in cycle.stderr
    fresh = Project(project.root.parent / "empty", project.env)
    fresh.root.mkdir()
    not_init = fresh.run("task", "list", check=False)
    assert not_init.returncode == 1 and "jetpack init" in not_init.stderr
    assert "tasks.local" in project.run("backends").stdout


def test_mail_and_memory_commands(project: Project) -> None:
    msg = project.run("mail", "send", "agent-x", "please review").stdout.strip()
    inbox = project.run("mail", "inbox", "agent-x", "--ack").stdout
    assert msg in inbox and "please review" in inbox
    assert msg not in project.run("mail", "inbox", "agent-x").stdout
    project.run("memory", "add", "The build uses hatch workspaces", "--importance", "0.9")
    assert "hatch workspaces" in project.run("memory", "search", "hatch").stdout
    assert '"total": 1' in project.run("memory", "stats").stdout
    assert "removed 0" in project.run("memory", "compact", "--threshold", "0.1").stdout


def test_worktrees_merge_the_task_branch(project: Project) -> None:
    root = project.root
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (root / ".gitignore").write_text(".beads/\n.cass/\n.mail/\n.jetpack/\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    tid = project.add("Add a module fake:write=src/new_module.py")
    project.run("start", "--agents", "1", "--until-empty", "--no-live", "--worktrees", timeout=90)
    assert (root / "src" / "new_module.py").read_text().startswith("written for")
    branches = subprocess.run(
        [*git, "branch", "--list", f"jetpack/{tid}"], capture_output=True, text=True, check=True
    ).stdout
    assert f"jetpack/{tid}" in branches
    task = json.loads(project.run("task", "show", tid).stdout)
    assert "merged" in task["metadata"]["result"]["git"]


def test_demo_runs_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "OPENAI"))}
    proc = subprocess.run(
        [sys.executable, "-m", "jetpack.cli", "demo", "--no-live", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "9/9 tasks completed" in proc.stdout
    assert "1 retry after back-off" in proc.stdout


# ------------------------------------------------- the main job, stopped and not
def configure(project: Project, **orchestrator: Any) -> None:
    """Use the default (MiniLM) embedder and these orchestrator settings."""
    config = project.root / ".jetpack" / "config.toml"
    data = tomllib.loads(config.read_text())
    data.pop("cass", None)
    data["orchestrator"].update(orchestrator)
    config.write_text(dump_toml(data))


SLEEP = "sleep 0.$((RANDOM % 3 + 1))"
"""Each task's work: 0.1 to 0.3 s (the command given by `jetpack start --command`)."""


def sleepers(project: Project, n: int, prefix: str = "s") -> list[str]:
    ids = [f"{prefix}{i:02d}" for i in range(n)]
    issues = project.root / f"{prefix}.jsonl"
    issues.write_text("".join(json.dumps({"id": i, "title": f"Sleeper {i}"}) + "\n" for i in ids))
    assert f"imported {n} tasks" in project.run("task", "import", str(issues)).stdout
    return ids


def start_command(project: Project, *args: str, command: str = SLEEP) -> list[str]:
    return ["start", "--no-live", "--executor", "command", "--command", command, *args]


def start_until_empty(project: Project, n: int, agents: int = 3, timeout: float = 300) -> float:
    started = time.monotonic()
    try:
        done = project.run(
            *start_command(project, "--agents", str(agents), "--until-empty"), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"jetpack start did not finish in {timeout:.0f}s (hung?)")
    assert f"{n} completed, 0 failed" in done.stdout, done.stdout + done.stderr
    return time.monotonic() - started


def test_start_runs_20_command_tasks_beside_the_default_embedder(project: Project) -> None:
    configure(project)
    sleepers(project, 20)
    start_until_empty(project, 20)
    stats = json.loads(project.run("memory", "stats").stdout)
    assert stats["total"] == 20 and stats["with_embedding"] == 20
    assert all(t["status"] == "completed" for t in project.json("task", "list"))


@pytest.mark.slow
def test_start_50_tasks_10_runs(project: Project) -> None:
    configure(project)
    times = []
    for run in range(10):
        sleepers(project, 50, prefix=f"r{run}-")
        times.append(start_until_empty(project, 50))
    print(f"50 tasks x 10 runs: {', '.join(f'{t:.1f}' for t in times)} s per run")
    stats = json.loads(project.run("memory", "stats").stdout)
    assert stats["total"] == 500 and stats["with_embedding"] == 500


def running(project: Project, n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = wait_for(
        lambda: (r := project.json("status")["running"]) and len(r) >= n and r, 60
    )
    return rows


def pids_of(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_hands_running_tasks_back_within_the_grace_periods(
    project: Project, alive: Any, sig: signal.Signals
) -> None:
    grace, kill = 1.0, 1.0
    configure(project, shutdown_grace_s=grace, kill_grace_s=kill)
    ids = sleepers(project, 3)
    pids = project.root / "pids"
    # the work ignores SIGTERM: only the SIGKILL after kill_grace_s ends it
    work = f"trap '' TERM; echo $$ >> {pids}; sleep 60 & wait"
    runner = project.spawn(*start_command(project, "--agents", "3", command=work))
    try:
        running(project, 3)
        wait_for(lambda: len(pids_of(pids)) == 3)
        sent = time.monotonic()
        runner.send_signal(sig)
        out, err = runner.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=10)
    assert runner.returncode == 130, out + err
    assert grace + kill <= elapsed < grace + kill + 10, elapsed
    assert "3 handed back" in out
    tasks = {t["id"]: t for t in project.json("task", "list")}
    assert all(tasks[i]["status"] == "ready" and tasks[i]["retry_count"] == 0 for i in ids)
    assert not any(alive(p) for p in pids_of(pids))


def test_a_second_ctrl_c_stops_at_once(project: Project, alive: Any) -> None:
    configure(project, shutdown_grace_s=600.0, kill_grace_s=1.0)
    ids = sleepers(project, 2)
    pids = project.root / "pids"
    runner = project.spawn(
        *start_command(project, "--agents", "2", command=f"echo $$ >> {pids}; exec sleep 60")
    )
    try:
        running(project, 2)
        wait_for(lambda: len(pids_of(pids)) == 2)
        sent = time.monotonic()
        runner.send_signal(signal.SIGINT)
        time.sleep(0.5)
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=10)
    assert runner.returncode == 130, out + err
    assert elapsed < 10, elapsed  # not the 600 s of grace
    assert "2 handed back" in out
    assert all(t["status"] == "ready" for t in project.json("task", "list") if t["id"] in ids)
    assert not any(alive(p) for p in pids_of(pids))


def test_ctrl_c_while_tasks_finish_and_memories_embed(project: Project) -> None:
    """The second variant of the deadlock: Ctrl+C with the embedder busy, then a clean end."""
    configure(project, shutdown_grace_s=0.5, kill_grace_s=0.5)
    sleepers(project, 30)
    runner = project.spawn(*start_command(project, "--agents", "3"))
    try:
        wait_for(lambda: project.json("status")["tasks"].get("completed", 0) >= 4, 120)
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate(timeout=10)
    assert runner.returncode == 130, out + err
    statuses = Counter(t["status"] for t in project.json("task", "list"))
    assert statuses["claimed"] == statuses["in_progress"] == 0, statuses
    assert statuses["completed"] >= 4


def test_executors_fail_fast_and_say_why(project: Project) -> None:
    tasks = [project.add(f"Task {i}") for i in range(3)]
    # not logged in: the first answer stops the run, the tasks are handed back, the fix shown
    env = {**project.env, "FAKE_CLAUDE_MODE": "auth"}
    proc = subprocess.run(
        project.argv("start", "--until-empty", "--no-live", "--executor", "claude"),
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ANTHROPIC_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    assert "success" not in proc.stdout + proc.stderr
    for task in project.json("task", "list"):
        assert task["status"] == "ready" and task["retry_count"] == 0
    # claude not installed: refused before anything is claimed
    project.run("config", "set", "claude.command", "/nonexistent/claude")
    proc = project.run("start", "--until-empty", "--no-live", "--executor", "claude", check=False)
    assert proc.returncode == 1 and "npm install -g" in proc.stderr
    assert not project.claude_log() or len(project.claude_log()) <= 3
    # the command executor without a command: refused, and --command gives one
    proc = project.run("start", "--until-empty", "--no-live", "--executor", "command", check=False)
    assert proc.returncode == 1 and "--command CMD" in proc.stderr
    assert all(t["status"] == "ready" for t in project.json("task", "list"))
    done = project.run("start", "--until-empty", "--no-live", "--command", "true")  # implies it
    assert f"{len(tasks)} completed" in done.stdout
