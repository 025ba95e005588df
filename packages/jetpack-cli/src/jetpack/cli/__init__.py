"""The jetpack command: runs a swarm of coding agents over shared task, mail and memory stores.

The command itself is ``jetpack`` (``python -m jetpack.cli``; :data:`app` is its
Typer application). For embedding: the :class:`Orchestrator` runs
:class:`Agent` objects over the stores with an :class:`Executor` (the interface
is :class:`ExecutionRequest` in, :class:`ExecutionResult` out,
:class:`ProgressEvent` along the way); four executors are built in.
"""

from typing import TYPE_CHECKING, Any

from jetpack.cli.__about__ import __version__
from jetpack.cli._agent import Agent
from jetpack.cli._claude import ClaudeCodeExecutor
from jetpack.cli._context import StopReason
from jetpack.cli._events import EventLog
from jetpack.cli._executors import (
    CommandExecutor,
    DemoExecutor,
    ExecutionRequest,
    ExecutionResult,
    Executor,
    InstantExecutor,
    ProgressEvent,
)
from jetpack.cli._orchestrator import Orchestrator
from jetpack.cli._settings import OrchestratorSettings

if TYPE_CHECKING:
    from jetpack.cli._cli import app

__all__ = [
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


def __getattr__(name: str) -> Any:
    """``app`` loads on first use: ``python -m jetpack.cli.mcp`` (one per agent) needs no typer."""
    if name == "app":
        from jetpack.cli._cli import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
