"""The jetpack command: runs a swarm of coding agents over shared task, mail and memory stores.

The command itself is ``jetpack`` (``python -m jetpack.cli``). The pieces it is
built from are public for embedding and testing: the :class:`Orchestrator`, the
:class:`Executor` interface and its implementations, the stream-json parser and
the process-group runner.
"""

from jetpack.cli.__about__ import __version__
from jetpack.cli._claude import ClaudeCodeExecutor, ClaudeOptions, StreamJsonParser
from jetpack.cli._events import EVENT_LOG, EventLog, OrchestratorEvent, read_events
from jetpack.cli._executors import (
    CommandExecutor,
    DemoExecutor,
    ExecutionRequest,
    ExecutionResult,
    Executor,
    ExecutorUnavailableError,
    InstantExecutor,
    ProgressEvent,
)
from jetpack.cli._orchestrator import AgentState, Orchestrator, RunSummary, new_run_id
from jetpack.cli._process import (
    ProcessResult,
    die_with_parent_prefix,
    group_alive,
    kill_process_group,
    run_process,
)
from jetpack.cli._prompt import build_prompt, files_of
from jetpack.cli._settings import (
    AgentSettings,
    ClaudeSettings,
    OrchestratorSettings,
    Settings,
    load_settings,
)

__all__ = [
    "EVENT_LOG",
    "AgentSettings",
    "AgentState",
    "ClaudeCodeExecutor",
    "ClaudeOptions",
    "ClaudeSettings",
    "CommandExecutor",
    "DemoExecutor",
    "EventLog",
    "ExecutionRequest",
    "ExecutionResult",
    "Executor",
    "ExecutorUnavailableError",
    "InstantExecutor",
    "Orchestrator",
    "OrchestratorEvent",
    "OrchestratorSettings",
    "ProcessResult",
    "ProgressEvent",
    "RunSummary",
    "Settings",
    "StreamJsonParser",
    "__version__",
    "build_prompt",
    "die_with_parent_prefix",
    "files_of",
    "group_alive",
    "kill_process_group",
    "load_settings",
    "new_run_id",
    "read_events",
    "run_process",
]
