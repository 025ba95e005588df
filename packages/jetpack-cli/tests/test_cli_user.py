"""What a new user runs into: errors, config keys, files, ids, logs, --json (the real command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from jetpack.cli._logs import KEEP_ATTEMPTS, MAX_LINES, AttemptLog, read_logs


class Cli:
    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "COLUMNS": "200", **env}
        self.env.pop("JETPACK_MODE", None)

    def __call__(
        self,
        *args: str,
        ok: bool | None = True,
        stdin: str | None = None,
        cwd: Path | None = None,
        code: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``jetpack ARGS`` (or, with ``code``, that Python code with ARGS as sys.argv)."""
        proc = subprocess.run(
            [sys.executable, *(["-c", code] if code else ["-m", "jetpack.cli"]), *args],
            cwd=cwd or self.cwd,
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        if ok is not None and (proc.returncode == 0) != ok:
            raise AssertionError(f"jetpack {' '.join(args)} → {proc.returncode}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


def one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    root = tmp_path / "proj"
    root.mkdir()
    c = Cli(root)
    c("init")
    c("config", "set", "cass.embedder", '"none"')  # text search only: fast start-up
    return c


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "-wal" not in p.name and "-shm" not in p.name
    }


# ---------------------------------------------------------------- no tracebacks
def test_errors_are_one_line_and_write_nothing(cli: Cli) -> None:
    config = cli.cwd / ".jetpack" / "config.toml"
    good = config.read_text()
    config.write_text(good.replace("[agents]", "[agents"))  # malformed TOML
    before = files(cli.cwd)
    one_error_line(cli("config", "show", ok=False), "not valid TOML")
    one_error_line(cli("config", "set", "agents.count", "2", ok=False), "not valid TOML")
    one_error_line(cli("task", "list", ok=False), "not valid TOML")
    assert files(cli.cwd) == before

    config.write_text(good.replace("count = 3", 'count = "three"'))
    before = files(cli.cwd)
    one_error_line(cli("start", "--until-empty", "--no-live", ok=False), "agents.count")
    assert files(cli.cwd) == before

    config.write_text(good)
    events = cli.cwd / ".jetpack" / "events.jsonl"
    events.mkdir()  # the run's log cannot be opened (as on a read-only .jetpack/)
    before = files(cli.cwd)
    one_error_line(cli("start", "--until-empty", "--no-live", ok=False), "events.jsonl")
    assert files(cli.cwd) == before


def test_start_and_demo_handle_a_store_error_as_every_command_does(
    cli: Cli, tmp_path: Path
) -> None:
    # The Typer app itself (no `main` around it): each command turns a store's error into
    # one line. A task database that is not a database is such an error.
    broken = b"not a database " * 400
    (cli.cwd / ".beads" / "beads.db").write_bytes(broken)
    kept = tmp_path / "demo"
    (kept / ".beads").mkdir(parents=True)
    (kept / ".beads" / "beads.db").write_bytes(broken)
    for args in (
        ["task", "list"],
        ["start", "--executor", "demo", "--until-empty", "--no-live"],
        ["demo", "--dir", str(kept), "--no-live"],
    ):
        proc = cli(*args, ok=None, code="from jetpack.cli import app; app()")
        assert proc.returncode == 1, (args, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert "Traceback" not in proc.stderr and len(errors) == 1, (args, proc.stderr)
        assert "beads.db" in errors[0] and "not a database" in errors[0], errors


def test_an_uninstalled_backend_is_one_line(cli: Cli) -> None:
    # Hide the local task store's entry point, as if jetpack-beads were not installed.
    hide = (
        "import importlib.metadata as m, sys\n"
        "real = m.entry_points\n"
        "def entry_points(**kw):\n"
        "    eps = real(**kw)\n"
        "    return m.EntryPoints([e for e in eps if e.name != 'tasks.local'])\n"
        "m.entry_points = entry_points\n"
        "from jetpack.cli.__main__ import main\n"
        "sys.argv = ['jetpack', *sys.argv[1:]]\n"
        "main()\n"
    )
    proc = cli("task", "list", ok=None, code=hide)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install jetpack-beads" in proc.stderr


# ------------------------------------------------------------------ config keys
def test_config_keys_are_checked(cli: Cli) -> None:
    config = cli.cwd / ".jetpack" / "config.toml"
    # typos in a file: warned about, not fatal (a file may be shared with a newer version)
    text = config.read_text() + "\n[beads]\nretry_base_msec = 10\n"
    text = text.replace("[orchestrator]\n", "[orchestrator]\nshutdown_grace = 3\n")
    text = text.replace("[local]\n", "[local]\ntasks_dbb = 'x'\n")  # a table of jetpack.shared
    config.write_text(text)
    listed = cli("task", "list").stderr
    assert "unknown key orchestrator.shutdown_grace" in listed
    assert "unknown key local.tasks_dbb (did you mean local.tasks_db?)" in listed
    proc = cli("config", "show")  # also checks the store tables (it imports the stores)
    assert (
        "unknown key orchestrator.shutdown_grace (did you mean orchestrator.shutdown_grace_s?)"
        in (proc.stderr)
    )
    assert "unknown key beads.retry_base_msec (did you mean beads.retry_base_ms?)" in proc.stderr
    before = config.read_text()
    refused = cli("config", "set", "orchestrator.shutdown_grace", "3", ok=False)
    assert "did you mean orchestrator.shutdown_grace_s" in refused.stderr
    assert "unknown table [agent]" in cli("config", "set", "agent.count", "3", ok=False).stderr
    for key, value in (("orchestrator.kill_grace_s", "-1"), ("orchestrator.task_timeout_s", "-5"),
                       ("agents.count", "-2"), ("orchestrator.claim_ttl_ms", "0")):  # fmt: skip
        assert key in cli("config", "set", key, value, ok=False).stderr
    assert config.read_text() == before
    cli("config", "set", "beads.retry_base_ms", "100")
    assert tomllib.loads(config.read_text())["beads"]["retry_base_ms"] == 100
    for args in (
        ["task", "add", "x", "--timeout", "-1"],
        ["task", "add", "x", "--max-retries", "-1"],
        ["start", "--agents", "0"],
        ["task", "list", "--limit", "0"],
    ):
        proc = cli(*args, ok=False)
        assert proc.returncode == 2 and "Invalid value" in proc.stderr, proc.stderr


# ----------------------------------------------------------- files and the root
def test_init_ignores_the_stores_and_commands_find_the_root(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "src" / "deep").mkdir(parents=True)
    (root / ".gitignore").write_text("*.pyc")  # no final newline
    c = Cli(root)
    c("init")
    c("init")  # again: nothing added twice
    ignore = (root / ".gitignore").read_text().splitlines()
    assert ignore[0] == "*.pyc"
    for entry in ("/.beads/beads.db*", "/.cass/memories.db*", "/.mail/"):
        assert ignore.count(entry) == 1, ignore
    runtime = (root / ".jetpack" / ".gitignore").read_text().split()
    assert {"mcp/", "logs/", "worktrees/", "events.jsonl"} <= set(runtime)
    added = c("task", "add", "From below", cwd=root / "src" / "deep").stdout.strip()
    assert [t["id"] for t in c.json("task", "list")] == [added]
    assert not (root / "src" / "deep" / ".jetpack").exists()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    one_error_line(c("task", "list", ok=False, cwd=outside), "jetpack init")


# ------------------------------------------------------------------------- ids
def test_ids_are_whole_and_unique_prefixes_work(cli: Cli) -> None:
    cli.env["COLUMNS"] = "50"  # a narrow terminal
    a = cli("task", "add", "A task with a title long enough to need wrapping").stdout.strip()
    b = cli("task", "add", "Another", "--dep", a[:6]).stdout.strip()
    assert (
        a in cli("task", "list").stdout
        and b in cli("task", "ready").stdout + cli("task", "list").stdout
    )
    assert json.loads(cli("task", "show", b[:7]).stdout)["dependencies"] == [a]
    one_error_line(cli("task", "show", "bd-", ok=False), "prefix of 2 tasks", a, b)
    one_error_line(cli("task", "show", "zz", ok=False), "not found")
    cli("task", "update", a[:5], "--title", "Renamed")
    assert json.loads(cli("task", "show", a).stdout)["title"] == "Renamed"


# ------------------------------------------------ descriptions, retry, logs, json
def test_description_files_retry_logs_and_json(cli: Cli, tmp_path: Path) -> None:
    text = "Long description\n" * 200
    (tmp_path / "desc.md").write_text(text)
    one = cli("task", "add", "From a file", "-F", str(tmp_path / "desc.md"), "--json").stdout
    assert json.loads(one)["description"] == text
    two = cli("task", "add", "From stdin", "--description-file", "-", "--json", stdin="piped\n")
    assert json.loads(two.stdout)["description"] == "piped\n"
    for tid in (json.loads(one)["id"], json.loads(two.stdout)["id"]):
        cli("task", "delete", tid)
    failing = cli(
        "task", "add", "Fails", "--max-retries", "0",
        "--command", "echo step one; echo broken >&2; exit 4",
    ).stdout.strip()  # fmt: skip
    run = cli("start", "--executor", "command", "--until-empty", "--no-live", ok=False)
    assert "1 failed" in run.stdout
    logs = cli("logs", failing[:6]).stdout
    assert "attempt 1 of 1" in logs and "output: step one" in logs and "stderr: broken" in logs
    assert "failed (error)" in logs and "exited with code 4" in logs
    cli("task", "retry", failing)
    task = json.loads(cli("task", "show", failing).stdout)
    assert task["status"] in ("pending", "ready") and "last_error" not in task
    one_error_line(cli("task", "retry", failing, ok=False), "not failed")
    cli("start", "--executor", "command", "--until-empty", "--no-live", ok=False)
    kept = cli.json("logs", failing)
    assert len(kept) == 2 and all("exited with code 4" in k["text"] for k in kept)
    # --json on every listing
    assert [t["id"] for t in cli.json("task", "list")] == [failing]
    assert cli.json("task", "ready") == []
    cli("memory", "add", "The build uses hatch workspaces")
    assert "hatch workspaces" in cli.json("memory", "search", "hatch")[0]["content"]
    cli("mail", "send", "agent-x", "please review")
    assert cli.json("mail", "inbox", "agent-x")[0]["payload"] == {"text": "please review"}
    assert cli.json("mail", "leases") == []
    assert cli.json("status")["total"] == 1


def test_help_shows_flags_without_a_bool_placeholder(cli: Cli) -> None:
    for args in (["start", "--help"], ["task", "list", "--help"], ["--help"]):
        out = cli(*args).stdout
        assert "<bool>" not in out and "--help" in out


# ------------------------------------------------------------------ attempt logs
def test_attempt_logs_are_bounded(tmp_path: Path) -> None:
    for n in range(KEEP_ATTEMPTS + 3):
        log = AttemptLog(tmp_path, "bd-x", "agent-1", "run")
        for i in range(MAX_LINES + 50):
            log.add(f"line {i} " + "x" * 2000)
        assert log.write(f"failed {n}") is not None
    kept = read_logs(tmp_path, "bd-x")
    assert len(kept) == KEEP_ATTEMPTS
    assert kept[-1].text.rstrip().endswith(f"failed {KEEP_ATTEMPTS + 2}")
    lines = kept[-1].text.splitlines()
    assert "(50 earlier lines not kept)" in kept[-1].text
    assert sum(line.startswith("line ") for line in lines) == MAX_LINES
    assert max(len(line) for line in lines) <= 2000
