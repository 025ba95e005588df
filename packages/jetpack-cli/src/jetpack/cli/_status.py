"""``jetpack status``: every live agent of the project, on every machine, from the mail bus.

A :class:`ProjectStatus` is what the command shows: the agents present on the
bus (their heartbeats carry run, host, task and leases), reconciled with the
task store (who holds what) and the live leases, plus task counts and recent
events. :func:`read_status` reads it once; :class:`StatusWatch` keeps it
current for ``jetpack status --watch`` from the bus itself — heartbeats update
presence, ``agent.stopped`` takes an agent off, task and file messages refresh
the counts and leases and join the event list — with a slow full re-read as
the fallback, so the tables are not polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jetpack.shared import (
    AgentPresence,
    AgentStatus,
    Lease,
    MailBus,
    Message,
    MessageType,
    Task,
    TaskStats,
    TaskStatus,
    TaskStore,
    utcnow,
)

__all__ = ["REFRESH_S", "ProjectStatus", "StatusWatch", "read_status"]

logger = logging.getLogger(__name__)

REFRESH_S = 30.0
"""``--watch``: a full re-read this often, whatever the bus said."""
SETTLE_S = 0.5
"""``--watch``: counts and leases are re-read at most this often after messages."""
PRESENCE_WINDOW_S = 90.0
"""``--watch``: an agent silent this long drops off (the buses' default presence window)."""


@dataclass(slots=True)
class ProjectStatus:
    """What ``jetpack status`` shows."""

    agents: list[AgentPresence]
    stats: TaskStats
    held: list[Task]
    leases: list[Lease]
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))

    def reconciled(self, viewer: str) -> list[AgentPresence]:
        """Live agents (not ``viewer``), each with the task the store says it holds."""
        holding = {t.assigned_agent: t for t in self.held if t.assigned_agent}
        out = []
        for agent in self.agents:
            if agent.agent_id == viewer or not agent.online:
                continue
            info = dict(agent.info)
            task = holding.get(agent.agent_id)
            status = agent.status
            if task is not None:
                # The store is the authority on who holds what; heartbeats may lag a beat.
                info.update(task_id=task.id, task_title=task.title)
                status = AgentStatus.BUSY
            elif agent.status is AgentStatus.BUSY and info.get("task_id"):
                status, info["task_id"], info["task_title"] = AgentStatus.IDLE, None, None
            info["leases"] = [le.path for le in self.leases if le.agent_id == agent.agent_id]
            out.append(agent.model_copy(update={"status": status, "info": info}))
        return out

    def as_json(self, viewer: str) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "agents": [a.model_dump(mode="json") for a in self.reconciled(viewer)],
            "tasks": {str(k): v for k, v in self.stats.by_status.items()},
            "ready": self.stats.ready,
            "total": self.stats.total,
            "running": [
                {"id": t.id, "title": t.title, "agent": t.assigned_agent} for t in self.held
            ],
            "leases": [le.model_dump(mode="json") for le in self.leases],
            "events": list(self.events),
        }


async def read_status(tasks: TaskStore, bus: MailBus) -> ProjectStatus:
    """One read of agents, counts, held tasks and leases."""
    agents, stats, held, leases = await asyncio.gather(
        bus.list_agents(),
        tasks.get_stats(),
        tasks.list_tasks({"status": [TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS]}),
        bus.list_leases(),
    )
    return ProjectStatus(agents, stats, held, leases)


class StatusWatch:
    """Keeps a :class:`ProjectStatus` current from the mail bus (``jetpack status --watch``).

    Subscribe it (:meth:`attach`) before the bus opens; :meth:`run` keeps the
    counts and leases fresh after messages, and re-reads everything every
    ``refresh_s``. :attr:`changed` is set whenever the status changed.
    """

    def __init__(self, tasks: TaskStore, bus: MailBus, *, refresh_s: float = REFRESH_S) -> None:
        self.tasks = tasks
        self.bus = bus
        self.refresh_s = refresh_s
        self.status: ProjectStatus | None = None
        self.changed = asyncio.Event()
        self.messages = 0
        """Messages received (tests)."""
        self.reads = 0
        """Store reads made (tests): full re-reads and settles."""
        self._dirty = asyncio.Event()
        self._presence: dict[str, AgentPresence] = {}

    def attach(self) -> None:
        """Subscribe to every message of the project."""
        self.bus.subscribe("*", self.on_message)

    def on_message(self, message: Message) -> None:
        """Fold one message into the status."""
        self.messages += 1
        status = self.status
        if status is None:
            return
        now = utcnow()
        if message.type is MessageType.HEARTBEAT:
            payload = dict(message.payload)
            reported = str(payload.pop("status", AgentStatus.IDLE.value))
            old = self._presence.get(message.from_agent)
            info = {**(old.info if old is not None else {}), **payload}
            try:
                agent_status = AgentStatus(reported)
            except ValueError:
                agent_status = AgentStatus.IDLE
            self._presence[message.from_agent] = AgentPresence(
                agent_id=message.from_agent,
                status=agent_status,
                last_seen=message.timestamp,
                online=agent_status is not AgentStatus.OFFLINE,
                info=info,
            )
        elif message.type is MessageType.AGENT_STOPPED:
            self._presence.pop(message.from_agent, None)
        else:
            status.events.append(
                {
                    "time": message.timestamp.isoformat(),
                    "kind": message.type.value,
                    "agent_id": message.from_agent,
                    "task_id": message.payload.get("task_id"),
                    "text": str(message.payload.get("title") or message.payload.get("error") or ""),
                }
            )
            if message.type.value.startswith(("task.", "file.")):
                self._dirty.set()
        cutoff = now - timedelta(seconds=PRESENCE_WINDOW_S)
        status.agents = [p for p in self._presence.values() if p.last_seen >= cutoff]
        self.changed.set()

    async def run(self) -> None:
        """Read once, then keep the status current until cancelled."""
        loop = asyncio.get_running_loop()
        next_full = 0.0
        while True:
            if loop.time() >= next_full:
                await self._read_all()
                next_full = loop.time() + self.refresh_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_full - loop.time())):
                    await self._dirty.wait()
            if self._dirty.is_set():
                self._dirty.clear()
                await self._settle()
                await asyncio.sleep(SETTLE_S)

    async def _read_all(self) -> None:
        try:
            fresh = await read_status(self.tasks, self.bus)
        except Exception as exc:
            logger.warning("status: reading the stores failed: %s", exc)
            return
        self.reads += 1
        if self.status is not None:
            fresh.events = self.status.events
        self._presence = {a.agent_id: a for a in fresh.agents}
        self.status = fresh
        self.changed.set()

    async def _settle(self) -> None:
        status = self.status
        if status is None:
            return
        try:
            stats, held, leases = await asyncio.gather(
                self.tasks.get_stats(),
                self.tasks.list_tasks({"status": [TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS]}),
                self.bus.list_leases(),
            )
        except Exception as exc:
            logger.warning("status: reading the stores failed: %s", exc)
            return
        self.reads += 1
        status.stats, status.held, status.leases = stats, held, leases
        self.changed.set()
