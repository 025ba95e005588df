"""Mixed load: several OS processes doing everything agents do at once, then a drain.

Each process creates tasks (with dependencies on recent tasks, some of them
failed), claims with short TTLs, sometimes starts, renews, works past its TTL,
completes, fails, releases or abandons, updates dependencies, priorities and
statuses, reopens failed tasks, and leases files around its work. Afterwards
one agent drains the queue (sweeping lapsed claims, completing whatever is
ready) until nothing is held or waiting for its back-off. The report then says
what the contract promises:

- every task ends completed, failed or blocked (``stranded``: any that does not);
- no blocked task is left without a cause (``stale_blocked``);
- no task was completed twice, and no completion landed after its claim lapsed;
- no two exclusive leases on overlapping paths were held at once.

``bench/mixed_load.py`` prints it for a 4-process × 30 s run over the local
stores; the integration tests run it short (and long, marked ``slow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jetpack.shared._tasks import FINAL_STATUSES, Task, TaskStatus
from jetpack.shared._time import utcnow
from jetpack.shared.errors import ConflictError, LeaseHeldError, NotFoundError, ValidationError
from jetpack.shared.rules import paths_overlap
from jetpack.shared.testing._children import ChildLink, run_children
from jetpack.shared.testing._model import stale_blocked
from jetpack.shared.testing._spec import StoreSpec

__all__ = ["MixedReport", "run_mixed_load"]

PATHS = ["src/a.py", "src/b.py", "src/**", "src/*.py", "docs/*.md", "docs/x.md", "tests/t.py"]
_PRIORITIES = ["low", "medium", "high", "critical"]
_EXPECTED = (ConflictError, ValidationError, NotFoundError)
_FAILED_BY_UPDATE = "failed by update"


@dataclass
class WorkerReport:
    """What one process saw."""

    agent: str
    ops: Counter[str] = field(default_factory=Counter)
    completions: list[str] = field(default_factory=list)
    late_completions: int = 0
    grants: list[tuple[str, int, int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class MixedReport:
    """The outcome of a mixed-load run."""

    processes: int
    seconds: float
    tasks: int
    by_status: dict[str, int]
    stranded: list[str]
    stale_blocked: list[str]
    double_completions: list[str]
    late_completions: int
    lease_grants: int
    lease_overlaps: int
    drained: int
    ops: dict[str, int]
    errors: list[str]

    @property
    def ok(self) -> bool:
        """True when every promise held."""
        return not (
            self.stranded
            or self.stale_blocked
            or self.double_completions
            or self.late_completions
            or self.lease_overlaps
            or self.errors
        )

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items()) if v)
        refused = sum(v for k, v in self.ops.items() if k.endswith(":refused"))
        done = sum(v for k, v in self.ops.items() if not k.endswith(":refused"))
        return [
            f"mixed load: {self.processes} processes x {self.seconds:g} s, then a drain",
            f"operations: {done} done, {refused} refused as the contract says "
            f"(lost claims, cycles, ...); {self.drained} tasks completed by the drain",
            f"tasks: {self.tasks} ({statuses})",
            f"stranded (not completed, failed or blocked): {len(self.stranded)}",
            f"blocked without a cause: {len(self.stale_blocked)}",
            f"double completions: {len(self.double_completions)}",
            f"completions after the claim lapsed: {self.late_completions}",
            f"lease grants: {self.lease_grants}, overlaps: {self.lease_overlaps}",
            f"unexpected errors: {len(self.errors)}",
            "by operation: " + ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items())),
        ]


async def _work(
    link: ChildLink,
    task_spec: StoreSpec,
    mail_spec: StoreSpec | None,
    agent: str,
    seconds: float,
    seed: int,
) -> WorkerReport:
    """One process of the load: set up, wait for the others, then run for ``seconds``."""
    rng = random.Random(seed)
    report = WorkerReport(agent)
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(task_spec.build())
        bus = await stack.enter_async_context(mail_spec.build(agent)) if mail_spec else None
        known: list[str] = []
        await link.ready()
        end = time.monotonic() + seconds
        step = 0
        while time.monotonic() < end:
            step += 1
            if step % 25 == 1:
                total = (await store.get_stats()).total
                recent = await store.list_tasks({"offset": max(total - 80, 0)})
                known = [t.id for t in recent]
            op = rng.choices(["create", "claim", "update", "reopen"], weights=[3, 5, 1.2, 0.3])[0]
            try:
                if op == "create":
                    await _create(store, rng, known, agent, step)
                elif op == "claim":
                    await _claim(store, bus, rng, report)
                elif op == "update" and known:
                    await _update(store, rng, known)
                elif op == "reopen" and known:
                    await _reopen(store, rng, known)
                report.ops[op] += 1
            except _EXPECTED:
                report.ops[f"{op}:refused"] += 1
            except Exception as exc:
                report.errors.append(f"{agent} {op}: {type(exc).__name__}: {exc}")
    return report


async def _create(store: Any, rng: random.Random, known: list[str], agent: str, step: int) -> None:
    items = []
    for j in range(rng.choice([1, 1, 2, 3])):
        pool = known[-40:]
        deps = rng.sample(pool, k=min(len(pool), rng.choice([0, 0, 1, 1, 2])))
        items.append(
            {
                "title": f"{agent} task {step}.{j}",
                "dependencies": deps,
                "max_retries": rng.choice([0, 1, 2]),
                "priority": rng.choice(_PRIORITIES),
            }
        )
    made = await store.create_tasks(items)
    known.extend(t.id for t in made)


async def _claim(store: Any, bus: Any, rng: random.Random, report: WorkerReport) -> None:
    ttl = rng.choice([100, 200, 400, 1000])
    task: Task | None = await store.claim_next(report.agent, ttl_ms=ttl)
    if task is None:
        await asyncio.sleep(0.01)
        return
    expires = task.claim_expires_at
    grant: tuple[str, int, int] | None = None
    if bus is not None and rng.random() < 0.5:
        path = rng.choice(PATHS)
        try:
            lease = await bus.grant_lease(path, 10_000)
            grant = (lease.path, lease.fencing_token, time.monotonic_ns())
        except LeaseHeldError:
            report.ops["lease:held"] += 1
    try:
        if rng.random() < 0.5:
            await store.start_task(task.id, report.agent)
        work = rng.choice([0.0, 0.0, 0.02, 0.05, 0.15, 0.3])
        if work and rng.random() < 0.4:
            await asyncio.sleep(work / 2)
            expires = (await store.renew_claim(task.id, report.agent, ttl_ms=ttl)).claim_expires_at
            await asyncio.sleep(work / 2)
        else:
            await asyncio.sleep(work)
        choice = rng.random()
        if choice < 0.65:
            before = utcnow()
            await store.complete_task(task.id, report.agent)
            report.completions.append(task.id)
            if expires is not None and before > expires:
                report.late_completions += 1
        elif choice < 0.9:
            await store.fail_task(task.id, report.agent, "mixed-load failure")
        elif choice < 0.95:
            await store.release_task(task.id, report.agent)
        # else: abandoned; the claim lapses and the task goes back to the queue
    finally:
        if grant is not None:
            path, token, start = grant
            report.grants.append((path, token, start, time.monotonic_ns()))
            await bus.release_lease(path)


async def _update(store: Any, rng: random.Random, known: list[str]) -> None:
    target = rng.choice(known)
    choice = rng.random()
    if choice < 0.5:
        pool = known[-40:]
        deps = rng.sample(pool, k=min(len(pool), rng.choice([1, 2])))
        await store.update_task(target, {"dependencies": deps})
    elif choice < 0.8:
        await store.update_task(target, {"priority": rng.choice(_PRIORITIES)})
    else:  # may hit a completed task: never reopened then (see _reopen)
        await store.update_task(target, {"status": "failed", "last_error": _FAILED_BY_UPDATE})


async def _reopen(store: Any, rng: random.Random, known: list[str]) -> None:
    """Retry a task that failed its attempts (one failed by update may have completed once)."""
    task: Task | None = await store.get_task(rng.choice(known))
    if (
        task is not None
        and task.status is TaskStatus.FAILED
        and task.last_error != _FAILED_BY_UPDATE
    ):
        await store.update_task(task.id, {"status": "pending", "max_retries": 1})


async def _drain(store: Any, timeout: float) -> tuple[int, list[str]]:
    """Complete everything that can run; stop when nothing is held or backing off."""
    drained: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await store.recover_expired_claims()
        task = await store.claim_next("drain", ttl_ms=600_000)
        if task is not None:
            await store.complete_task(task.id, "drain")
            drained.append(task.id)
            continue
        stats = await store.get_stats()
        held = stats.by_status[TaskStatus.CLAIMED] + stats.by_status[TaskStatus.IN_PROGRESS]
        now = utcnow()
        backing_off = [
            t
            for t in await store.list_tasks({"status": "ready"})
            if t.not_before is not None and t.not_before > now
        ]
        if not held and not backing_off:
            break
        await asyncio.sleep(0.05)
    return len(drained), drained


def _overlaps(grants: list[tuple[int, str, int, int, int]]) -> int:
    """Pairs of grants of different processes on overlapping paths, held at once."""
    found = 0
    active: list[tuple[int, str, int, int, int]] = []
    for grant in sorted(grants, key=lambda g: g[3]):
        active = [a for a in active if a[4] > grant[3]]
        found += sum(1 for a in active if a[0] != grant[0] and paths_overlap(a[1], grant[1]))
        active.append(grant)
    return found


async def run_mixed_load(
    task_spec: StoreSpec,
    mail_spec: StoreSpec | None = None,
    *,
    processes: int = 4,
    seconds: float = 30.0,
    seed: int = 11,
    drain_timeout: float = 120.0,
) -> MixedReport:
    """Run the mixed load over fresh stores built from the specs; return the report.

    ``task_spec.build()`` opens the task store (give it a short ``retry_base_ms``,
    e.g. 50, so the drain does not wait long for back-offs);
    ``mail_spec.build(agent_id)`` opens a bus for leases (None: no leases).
    """
    reports: list[WorkerReport] = await asyncio.to_thread(
        run_children,
        _work,
        [(task_spec, mail_spec, f"load-{i}", seconds, seed * 1000 + i) for i in range(processes)],
        timeout=seconds + 300,
    )
    async with task_spec.build() as store:
        drained, drain_ids = await _drain(store, drain_timeout)
        tasks: list[Task] = await store.list_tasks()
    by_status = Counter(t.status.value for t in tasks)
    completions = Counter(tid for r in reports for tid in r.completions)
    completions.update(drain_ids)
    grants = [(i, *g) for i, r in enumerate(reports) for g in r.grants]
    ops: Counter[str] = Counter()
    for r in reports:
        ops.update(r.ops)
    open_statuses = set(TaskStatus) - FINAL_STATUSES - {TaskStatus.BLOCKED}
    return MixedReport(
        processes=processes,
        seconds=seconds,
        tasks=len(tasks),
        by_status={s.value: by_status.get(s.value, 0) for s in TaskStatus},
        stranded=[t.id for t in tasks if t.status in open_statuses],
        stale_blocked=stale_blocked(tasks),
        double_completions=sorted(tid for tid, n in completions.items() if n > 1),
        late_completions=sum(r.late_completions for r in reports),
        lease_grants=len(grants),
        lease_overlaps=_overlaps(grants),
        drained=drained,
        ops=dict(ops),
        errors=[e for r in reports for e in r.errors],
    )
