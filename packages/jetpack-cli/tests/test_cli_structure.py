"""The package's shape: a small public surface, no import cycle, the agent composed."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import typer

import jetpack.cli
from jetpack.cli import Agent, Orchestrator
from jetpack.cli._context import RunContext
from jetpack.shared.testing import InMemoryMailBus, InMemoryMailHub, InMemoryTaskStore

PUBLIC = [
    "Agent",
    "ClaudeCodeExecutor",
    "CommandExecutor",
    "DemoExecutor",
    "EventLog",
    "ExecutionRequest",
    "ExecutionResult",
    "Executor",
    "InstantExecutor",
    "Orchestrator",
    "OrchestratorSettings",
    "ProgressEvent",
    "StopReason",
    "__version__",
    "app",
]
"""The app, the orchestrator and its agent, its settings, events and stop reason, the executor
interface and the built-in executors. A name added here is a promise: keep it to 15."""


# ------------------------------------------------------------- public surface
def test_the_public_surface_is_pinned_and_small() -> None:
    assert jetpack.cli.__all__ == PUBLIC
    assert len(PUBLIC) <= 15
    for name in PUBLIC:
        assert getattr(jetpack.cli, name) is not None, name
    assert isinstance(jetpack.cli.app, typer.Typer)
    commands = {c.name or c.callback.__name__ for c in jetpack.cli.app.registered_commands}  # type: ignore[union-attr]
    assert {"start", "status", "demo", "init"} <= commands


def test_importing_the_package_loads_no_command_line_library() -> None:
    # `python -m jetpack.cli.mcp` (one per Claude agent) imports the package: the app loads
    # on first use, so the MCP server starts without typer.
    code = (
        "import sys, jetpack.cli\n"
        "assert 'typer' not in sys.modules, 'typer imported'\n"
        "app = jetpack.cli.app\n"
        "assert 'typer' in sys.modules and type(app).__name__ == 'Typer'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------- import graph
def _module_files() -> dict[str, Path]:
    root = Path(jetpack.cli.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("jetpack", "cli", *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(files: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module → the package's modules it imports, anywhere in its text (functions included).

    ``from P import name`` counts as importing ``P.name`` when that is a module, else ``P``.
    (Importing a submodule also runs its parent package first; that implied step is not an
    edge, or every package re-exporting its modules would be a cycle.)
    """
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    targets.append(
                        f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    )
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a2"}, "a2": set(), "x": {"y"}, "y": {"x"}}) == ["x", "y", "x"]


def test_no_import_cycle_between_the_modules() -> None:
    files = _module_files()
    graph = import_graph(files)
    # The graph sees imports inside functions and the lazy `app` (it is not empty by mistake).
    assert "jetpack.cli._run" in graph["jetpack.cli._cmd_run"]
    assert "jetpack.cli._cli" in graph["jetpack.cli"]
    assert "jetpack.cli.mcp" in graph["jetpack.cli._claude"]  # imported inside a function
    assert "jetpack.cli._cmd_mcp" in graph["jetpack.cli._cli"]  # `from jetpack.cli import _cmd_mcp`
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# ----------------------------------------------------------- agent and owner
def test_the_orchestrator_owns_its_agents_and_inherits_nothing(tmp_path: Path) -> None:
    assert Orchestrator.__mro__ == (Orchestrator, object)
    assert Agent.__mro__ == (Agent, object)
    hub = InMemoryMailHub()
    orch = Orchestrator(
        tasks=InMemoryTaskStore(),
        memory=None,
        mail_factory=lambda agent_id: InMemoryMailBus(agent_id, hub=hub),
        executor=jetpack.cli.InstantExecutor(),
        project_dir=tmp_path,
        agent_count=2,
        run_id="abc123",
    )
    assert isinstance(orch.context, RunContext)
    assert [a.agent_id for a in orch.agents] == ["agent-abc123-1", "agent-abc123-2"]
    for agent in orch.agents:
        assert isinstance(agent, Agent)
        assert agent.context is orch.context  # one set of services, shared
        assert isinstance(agent.bus, InMemoryMailBus) and agent.bus.agent_id == agent.agent_id
        assert agent.held == [] and agent.state.task_id is None
    assert orch.context.memory_writer is None  # no memory store, nothing to write
