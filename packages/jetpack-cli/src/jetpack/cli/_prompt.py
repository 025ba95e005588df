"""What an agent is told: the task, what was learned before, the last error, others' leases."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from jetpack.shared import Lease, MemoryEntry, Task
from jetpack.shared.errors import ValidationError
from jetpack.shared.rules import normalize_lease_path

__all__ = ["build_prompt", "files_of"]

logger = logging.getLogger(__name__)

_PATH = re.compile(r"(?<![\w./-])((?:src|lib|packages|apps|tests?|docs)/[\w.*/-]*[\w*/])(?![\w/-])")
MAX_FILES = 50


def files_of(task: Task) -> list[str]:
    """Paths and globs a task names: ``metadata["files"]``, then paths in its text.

    Paths in the text are those under the usual source roots (``src/``,
    ``lib/``, ``packages/``, ``apps/``, ``test(s)/``, ``docs/``).
    """
    found: list[str] = []
    declared = task.metadata.get("files")
    if isinstance(declared, str):
        declared = [declared]
    if isinstance(declared, list):
        found += [str(f).strip() for f in declared if str(f).strip()]
    for text in (task.title, task.description or ""):
        found += [m.rstrip(".") for m in _PATH.findall(text)]
    paths: list[str] = []
    for path in found:
        if path.endswith("/"):
            path += "**"
        try:
            paths.append(normalize_lease_path(path))
        except ValidationError:
            logger.warning("task %s: ignoring lease path %r", task.id, path)
    return list(dict.fromkeys(paths))[:MAX_FILES]


def build_prompt(
    task: Task,
    *,
    agent_id: str,
    memories: Sequence[MemoryEntry] = (),
    others_leases: Sequence[Lease] = (),
    my_files: Sequence[str] = (),
    verify_command: str | None = None,
    mcp_tools: bool = False,
) -> str:
    """The prompt of one attempt, in Markdown."""
    parts = [
        f"You are {agent_id}, one of several coding agents working on this repository.",
        "Other agents edit other parts at the same time: stay within your task.",
        "",
        f"## Task {task.id}: {task.title}",
        f"Priority: {task.priority}.",
    ]
    if task.required_skills:
        parts.append(f"Skills: {', '.join(task.required_skills)}.")
    if task.estimated_minutes:
        parts.append(f"Estimate: {task.estimated_minutes} minutes.")
    if task.description:
        parts += ["", task.description.strip()]
    if my_files:
        parts += ["", "## Files leased to you", *[f"- {f}" for f in my_files]]
    if others_leases:
        parts += [
            "",
            "## Files other agents are editing now (do not touch them)",
            *[f"- {lease.path} ({lease.agent_id})" for lease in others_leases[:50]],
        ]
    if task.retry_count and task.last_error:
        parts += [
            "",
            f"## Previous attempt failed (attempt {task.retry_count + 1} of "
            f"{task.max_retries + 1})",
            (task.failure_type.value + ": " if task.failure_type else "")
            + task.last_error.strip()[:4000],
            "Find out why before trying again, and take a different approach if needed.",
        ]
    if memories:
        parts += ["", "## What earlier work learned (may be relevant)"]
        parts += [f"- {m.content.strip()[:600]}" for m in memories]
    if mcp_tools:
        parts += [
            "",
            "## Coordinating through the jetpack tools",
            "Use the `jetpack` MCP tools: `mail inbox` for messages, `memory search` before you",
            "start and `memory store` for what you learn, `lease reserve` before editing a file",
            "not listed above, and `task progress` on long work. Do not call `task complete` or",
            "`task fail` for this task: Jetpack records the outcome when you finish.",
        ]
    parts += ["", "## How you finish"]
    if verify_command:
        parts.append(f"After you finish, `{verify_command}` runs; the task fails if it fails.")
    parts.append("End with a short summary: what you changed, which files, how you checked it.")
    return "\n".join(parts) + "\n"
