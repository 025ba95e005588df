"""``--until-empty`` with several runs on one project: when a run is out of work.

A run (one ``jetpack start``) stops when, after one of its agents found
nothing to claim:

1. none of its own agents is running a task;
2. no task it could take (its skills) is ready, nor backing off
   (``not_before`` ahead: it waits for the back-off, then claims);
3. every task held by another agent is held by a *live* one: those tasks, and
   the dependants they will ready, are that run's to finish.

A holder is live when its heartbeat moved between two looks of this run, at
most a few of its heartbeat periods apart (the holder's ``heartbeat_s`` is in
its presence info). Anything else does not stop the run:

- a claim past its expiry is ready again (``claim_next`` takes it);
- a holder not present on the bus, or whose heartbeat did not move within two
  of its periods (a killed ``jetpack start`` keeps its presence until the
  presence window ends, but never heartbeats again), is *gone*: its task comes
  back when its claim lapses, and this run waits to take it;
- a holder seen once is looked at again one heartbeat period later.

So a run never quits while the tasks of a dead run are still to be retaken,
and never waits on a live run's long task. Presence needs no shared clock:
only the holder's own ``last_seen`` values are compared. The one gap: a run
that dies in the heartbeat period after another run saw it live and quit
leaves its tasks to whichever run starts next (``jetpack start`` recovers
lapsed claims first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from jetpack.cli._network import Reachability
from jetpack.cli._wakeups import seconds_until
from jetpack.shared import AgentPresence, MailBus, TaskStatus, TaskStore
from jetpack.shared.errors import JetpackError, UnavailableError
from jetpack.shared.rules import has_skills

__all__ = ["DEFAULT_HEARTBEAT_S", "DrainCheck", "Verdict"]

DEFAULT_HEARTBEAT_S = 10.0
"""A holder's heartbeat period when its presence does not say."""
RECHECK_S = 2.0
"""Look again this soon when a look failed (a store did not answer)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one look."""

    drained: bool
    due_s: float | None = None
    """Seconds until something may change (a back-off ends, a claim lapses, a holder is
    looked at again); None: only a message or the fallback claim can bring work."""
    why: str = ""
    at: float = 0.0
    """``time.monotonic()`` when the look started."""


@dataclass(slots=True)
class _Seen:
    last_seen: datetime
    observed: float


class DrainCheck:
    """The until-empty rule of one run (see the module docstring).

    ``busy()`` says whether one of the run's agents runs a task; ``own`` holds
    its agent ids; ``bus`` is one of its mail buses (for presence).
    """

    def __init__(
        self,
        *,
        tasks: TaskStore,
        bus: MailBus,
        own: Collection[str],
        busy: Callable[[], bool],
        skills: Sequence[str] | None,
        network: Reachability,
    ) -> None:
        self.tasks = tasks
        self.bus = bus
        self.own = frozenset(own)
        self.busy = busy
        self.skills = skills
        self.network = network
        self.looks = 0
        """Looks at the stores so far (tests, benchmarks)."""
        self._seen: dict[str, _Seen] = {}
        self._last: Verdict | None = None
        self._lock = asyncio.Lock()

    async def check(self, since: float) -> Verdict:
        """Is the run out of work? ``since``: when the asking agent's claim started.

        A look that started after ``since`` answers for it too (eight agents
        finding nothing at once cost one look).
        """
        if self.busy():
            return Verdict(False, None, "an agent of this run is running a task", time.monotonic())
        async with self._lock:
            last = self._last
            if last is not None and last.at >= since:
                return last
            verdict = await self._look()
            self._last = verdict
            return verdict

    async def _look(self) -> Verdict:
        started = time.monotonic()
        self.looks += 1
        try:
            listed = await self.network.call(
                "tasks",
                self.tasks.list_tasks(
                    {"status": [TaskStatus.READY, TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS]}
                ),
            )
        except UnavailableError:
            return Verdict(False, None, "the task store does not answer", started)
        except JetpackError:
            return Verdict(False, RECHECK_S, "listing the tasks failed", started)
        if self.busy():
            return Verdict(False, None, "an agent of this run is running a task", started)
        due: list[float] = []
        held: list[tuple[str, float | None]] = []  # holder, seconds to its claim's expiry
        for task in listed:
            if task.status is TaskStatus.READY:
                if not has_skills(task, self.skills):
                    continue
                wait = seconds_until(task.not_before)
                if wait is None or wait <= 0:
                    return Verdict(False, 0.0, f"{task.id} is ready", started)
                due.append(wait)
                continue
            expires = seconds_until(task.claim_expires_at)
            if expires is not None and expires <= 0:
                return Verdict(False, 0.0, f"the claim on {task.id} lapsed", started)
            held.append((task.assigned_agent or "", expires))
        if held:
            try:
                present = await self.network.call("mail", self.bus.list_agents())
            except UnavailableError:
                return Verdict(False, RECHECK_S, "the mail bus does not answer", started)
            except JetpackError:
                return Verdict(False, RECHECK_S, "listing the agents failed", started)
            live = {p.agent_id: p for p in present if p.online}
            for holder, expires in held:
                wait = self._holder_wait(live.get(holder), expires, started)
                if wait is not None:
                    due.append(wait)
        if due:
            return Verdict(False, max(0.0, min(due)), "work may still come back", started)
        why = "no task left" if not held else "the other runs' live agents hold the rest"
        return Verdict(True, None, why, started)

    def _holder_wait(
        self, presence: AgentPresence | None, expires: float | None, now: float
    ) -> float | None:
        """None: the holder is live (its task is its run's); else seconds until a look is due."""
        if presence is None or presence.agent_id in self.own:
            # Gone (or one of ours that is not running it): back when its claim lapses.
            return expires if expires is not None else RECHECK_S
        period = _period(presence)
        seen = self._seen.get(presence.agent_id)
        if seen is None or now - seen.observed > 3 * period + 1.0:
            self._seen[presence.agent_id] = _Seen(presence.last_seen, now)
            return period + 0.5
        if presence.last_seen > seen.last_seen:
            self._seen[presence.agent_id] = _Seen(presence.last_seen, now)
            return None
        if now - seen.observed > 2 * period + 1.0:  # silent: dead, or cut off from the bus
            return expires if expires is not None else period
        return max(0.1, seen.observed + 2 * period + 1.5 - now)  # then it counts as silent


def _period(presence: AgentPresence) -> float:
    value = presence.info.get("heartbeat_s")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return min(float(value), 120.0)
    return DEFAULT_HEARTBEAT_S
