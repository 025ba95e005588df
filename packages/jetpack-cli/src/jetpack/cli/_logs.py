"""What each attempt printed, kept per attempt under ``.jetpack/logs/<task>/``, bounded.

An attempt's log holds a header (task, agent, run, start time), the executor's
output as it came (command stdout and stderr lines, Claude's text and tool
calls), and how the attempt ended. At most ``MAX_LINES`` lines of at most
``MAX_LINE`` characters are kept per attempt (the last ones), and the last
``KEEP_ATTEMPTS`` attempts per task. ``jetpack logs TASK`` prints them.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from jetpack.shared import utcnow

__all__ = [
    "KEEP_ATTEMPTS",
    "LOG_DIR",
    "MAX_LINE",
    "MAX_LINES",
    "AttemptLog",
    "KeptLog",
    "read_logs",
]

logger = logging.getLogger(__name__)

LOG_DIR = Path(".jetpack") / "logs"
"""Where attempt logs go, relative to the project root."""
MAX_LINES = 1000
MAX_LINE = 500
KEEP_ATTEMPTS = 10

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _folder(root: Path, task_id: str) -> Path:
    return root / LOG_DIR / _SAFE.sub("_", task_id)


class AttemptLog:
    """The output of one attempt, in memory until :meth:`write`."""

    def __init__(self, root: Path, task_id: str, agent_id: str, run_id: str) -> None:
        self.root = root
        self.task_id = task_id
        self.agent_id = agent_id
        self.run_id = run_id
        self.started = utcnow()
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        self.dropped = 0

    def add(self, text: str) -> None:
        """Keep one line of output (the oldest go first when there are too many)."""
        if len(self.lines) == MAX_LINES:
            self.dropped += 1
        self.lines.append(text.replace("\n", " ")[:MAX_LINE])

    def write(self, outcome: str) -> Path | None:
        """Write the log with its ``outcome`` line; prune the task's oldest logs."""
        folder = _folder(self.root, self.task_id)
        stem = f"{self.started:%Y%m%dT%H%M%S.%f}-{_SAFE.sub('_', self.agent_id)}"
        header = [
            f"# task {self.task_id}, agent {self.agent_id}, run {self.run_id}",
            f"# started {self.started.isoformat(timespec='seconds')}, "
            f"ended {utcnow().isoformat(timespec='seconds')}",
        ]
        if self.dropped:
            header.append(f"# ({self.dropped} earlier lines not kept)")
        body = [*header, *self.lines, f"# {outcome}"[: MAX_LINE * 4]]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = _new_file(folder, stem, "\n".join(body) + "\n")
            for old in sorted(folder.glob("*.log"))[:-KEEP_ATTEMPTS]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not write the attempt log of %s: %s", self.task_id, exc)
            return None
        return path


def _new_file(folder: Path, stem: str, text: str) -> Path:
    """Write ``text`` to a new file ``<stem>-<n>.log`` (n = 000, 001, …).

    Two attempts started in the same millisecond (the clock's resolution) never
    overwrite each other, and the names still sort oldest first.
    """
    for n in range(1000):
        path = folder / f"{stem}-{n:03d}.log"
        try:
            with path.open("x", encoding="utf-8") as file:
                file.write(text)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{folder / stem}-999.log exists")


@dataclass(frozen=True, slots=True)
class KeptLog:
    """One attempt's kept log."""

    path: Path
    text: str


def read_logs(root: Path, task_id: str) -> list[KeptLog]:
    """The kept logs of a task, oldest first."""
    folder = _folder(root, task_id)
    if not folder.is_dir():
        return []
    return [
        KeptLog(path, path.read_text(encoding="utf-8", errors="replace"))
        for path in sorted(folder.glob("*.log"))
    ]
