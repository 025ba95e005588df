"""Orchestrator events: kept in memory for the live view and appended to ``.jetpack/events.jsonl``.

The log file is how ``jetpack status`` (another process) shows recent events:
each event is one short line written with ``O_APPEND``, so lines of several
``jetpack start`` processes interleave whole. It is trimmed at start-up.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jetpack.shared import utcnow

__all__ = ["EVENT_LOG", "EventLog", "OrchestratorEvent", "read_events"]

logger = logging.getLogger(__name__)

EVENT_LOG = Path(".jetpack") / "events.jsonl"
"""Where events go, relative to the project root."""
MAX_LOG_BYTES = 2 * 1024 * 1024
KEEP_LINES = 2000


@dataclass(frozen=True, slots=True)
class OrchestratorEvent:
    """Something that happened to an agent or a task."""

    kind: str
    """started, claimed, completed, retry, failed, interrupted, lease_wait, released, claim_lost,
    progress, error, stopped."""
    agent_id: str
    task_id: str | None = None
    text: str = ""
    time: datetime = field(default_factory=utcnow)
    run_id: str = ""

    def to_json(self) -> str:
        """One log line."""
        data: dict[str, Any] = asdict(self)
        data["time"] = self.time.isoformat()
        return json.dumps(data, separators=(",", ":"))


class EventLog:
    """Recent events in memory, plus the append-only log file and listeners."""

    def __init__(self, path: Path | None, *, keep: int = 500) -> None:
        self.path = path
        self.recent: deque[OrchestratorEvent] = deque(maxlen=keep)
        self.listeners: list[Callable[[OrchestratorEvent], None]] = []
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _trim(path)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(self, event: OrchestratorEvent) -> None:
        """Record an event (progress events stay in memory only)."""
        self.recent.append(event)
        if self._fd is not None and event.kind != "progress":
            try:
                os.write(self._fd, (event.to_json()[:4000] + "\n").encode())
            except OSError:
                logger.warning("could not write the event log %s", self.path)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("event listener failed")

    def close(self) -> None:
        """Close the log file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _trim(path: Path) -> None:
    try:
        if path.stat().st_size <= MAX_LOG_BYTES:
            return
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-KEEP_LINES:]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    except FileNotFoundError:
        return


def read_events(path: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The last ``limit`` events of a log file (bad lines skipped)."""
    if not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 256 * 1024))
        lines = fh.read().decode("utf-8", errors="replace").splitlines()
    events: list[dict[str, Any]] = []
    for line in reversed(lines):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            events.append(data)
        if len(events) >= limit:
            break
    return list(reversed(events))
