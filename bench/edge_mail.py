"""The mail part of bench/edge.py: jetpack-cf-mail on local workerd next to jetpack-mcp-mail.

Run:  hatch run python bench/edge.py --part mail [--messages 1000] [--cycles 300]

Both buses do the same work in the same run: publish → handler latency across
two processes (paced one-way sends, the payload carries CLOCK_MONOTONIC, one
clock for every process on a machine), a broadcast to 8 subscribers in another
process (latency to the last of the 8), and lease acquire+release cycles with 4
processes over overlapping paths and globs, every grant recorded with its
fencing token and checked for overlap. Targets of issue 15: p50 <= 10 ms,
p99 <= 50 ms, leases >= 500 ops/s, 0 violations, 0 duplicates.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from jetpack.cf_mail import CloudflareMailBus
from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import MailBus, Message, MessageType
from jetpack.shared.errors import LeaseHeldError
from jetpack.shared.testing.edge import EdgeProject, EdgeWorker
from mail import PATHS, Grant, pct, violations  # bench/mail.py: the same paths and checks

Spec = tuple[str, str, str]  # ("edge", url, token) or ("local", mail_dir, "")


def make_bus(spec: Spec, agent: str) -> MailBus:
    kind, where, token = spec
    if kind == "edge":
        return CloudflareMailBus(agent, where, token)
    return MCPMailAdapter(agent, where)


# -- children (spawned processes) -----------------------------------------------------------


def subscriber_child(spec: Spec, agents: list[str], ready: Any, results: Any) -> None:
    """``agents`` buses subscribed to '*': record (agent, i, receive_ns - t) until 'done'."""

    async def run() -> None:
        seen: list[tuple[str, int, float]] = []
        dupes = 0
        done = asyncio.Event()
        remaining = set(agents)
        got: dict[str, set[int]] = {agent: set() for agent in agents}

        def handler_for(agent: str) -> Any:
            def handler(message: Message) -> None:
                nonlocal dupes
                now = time.monotonic_ns()
                if message.payload.get("done"):
                    remaining.discard(agent)
                    if not remaining:
                        done.set()
                    return
                i = message.payload["i"]
                if i in got[agent]:
                    dupes += 1
                got[agent].add(i)
                seen.append((agent, i, (now - message.payload["t"]) / 1e6))

            return handler

        buses = [make_bus(spec, agent) for agent in agents]
        for agent, bus in zip(agents, buses, strict=True):
            bus.subscribe(MessageType.TASK_PROGRESS, handler_for(agent))
            await bus.initialize()
        ready.set()
        await done.wait()
        for bus in buses:
            await bus.shutdown()
        results.put({"seen": seen, "dupes": dupes})

    asyncio.run(run())


def lease_child(spec: Spec, agent: str, cycles: int, start_at: float, results: Any) -> None:
    async def run() -> None:
        grants: list[Grant] = []
        offset = sum(map(ord, agent))
        async with make_bus(spec, agent) as bus:
            await asyncio.sleep(max(start_at - time.time(), 0))
            cpu = time.process_time()
            start = time.monotonic_ns()
            for i in range(cycles):
                path = PATHS[(i * 3 + offset) % len(PATHS)]
                try:
                    lease = await bus.grant_lease(path, 10_000)
                except LeaseHeldError:
                    continue
                held_from = time.monotonic_ns()
                held_until = time.monotonic_ns()
                await bus.release_lease(path)
                grants.append((agent, path, lease.fencing_token, held_from, held_until))
            end = time.monotonic_ns()
            cpu = time.process_time() - cpu
        results.put({"grants": grants, "start": start, "end": end, "cpu": cpu})

    asyncio.run(run())


# -- measures ---------------------------------------------------------------------------------


async def fan_out(spec: Spec, subscribers: int, n: int, gap_ms: float) -> dict[str, Any]:
    """Paced broadcasts to ``subscribers`` buses in another process."""
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    agents = [f"sub-{i}" for i in range(subscribers)]
    child = ctx.Process(target=subscriber_child, args=(spec, agents, ready, results))
    child.start()
    while not ready.wait(0.05):
        if not child.is_alive():
            raise SystemExit("subscriber process died")
    async with make_bus(spec, "pub") as pub:
        for i in range(n):
            await pub.publish(MessageType.TASK_PROGRESS, {"i": i, "t": time.monotonic_ns()})
            await asyncio.sleep(gap_ms / 1000)
        await pub.publish(MessageType.TASK_PROGRESS, {"done": True})
    data: dict[str, Any] = await asyncio.to_thread(results.get, True, 300)
    child.join(60)
    seen: list[tuple[str, int, float]] = data["seen"]
    per_message: dict[int, float] = {}
    for _, i, ms in seen:
        per_message[i] = max(per_message.get(i, 0.0), ms)
    return {
        "deliveries": [ms for _, _, ms in seen],
        "last_of_all": list(per_message.values()),
        "lost": n * subscribers - len(seen),
        "dupes": data["dupes"],
    }


def lease_race(spec: Spec, procs: int, cycles: int) -> tuple[float, int, int, float]:
    """Cycles per second, grants, violations, and the racers' own CPU per cycle (ms)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 3
    children = [
        ctx.Process(target=lease_child, args=(spec, f"lease-p{i}", cycles, start_at, results))
        for i in range(procs)
    ]
    for child in children:
        child.start()
    data = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join(60)
    elapsed = (max(d["end"] for d in data) - min(d["start"] for d in data)) / 1e9
    grants = [tuple(g) for d in data for g in d["grants"]]
    client_ms = sum(d["cpu"] for d in data) * 1000 / (procs * cycles)
    return procs * cycles / elapsed, len(grants), violations(grants), client_ms  # type: ignore[arg-type]


async def http_lease_cycles(project: EdgeProject, cycles: int) -> float:
    """Acquire+release through the HTTP routes (what the bus does only while its socket is down)."""
    headers = {"Authorization": f"Bearer {project.token}"}
    async with httpx.AsyncClient(base_url=project.url, headers=headers, timeout=60) as http:
        started = time.perf_counter()
        for i in range(cycles):
            body = {"path": f"src/{i}.py", "agent_id": "http", "ttl_ms": 10_000}
            key = {"Idempotency-Key": f"bench-{i}-{time.monotonic_ns()}"}
            (await http.post("/api/mail/lease", json=body, headers=key)).raise_for_status()
            params = {"path": f"src/{i}.py", "agent_id": "http"}
            (await http.delete("/api/mail/lease", params=params)).raise_for_status()
        return cycles / (time.perf_counter() - started)


def line(name: str, edge: str, local: str) -> None:
    print(f"{name:<44} edge {edge:<34} mcp-mail {local}")


async def run_mail(
    worker: EdgeWorker,
    work: Path,
    messages: int,
    cycles: int,
    cpu_ticks: Callable[[], dict[str, int]],
) -> None:
    """Every mail measure, edge next to jetpack-mcp-mail (``cpu_ticks``: bench/edge.py's)."""
    print()
    print(f"mail: jetpack-cf-mail (MailboxDO, LeaseDO on workerd) vs jetpack-mcp-mail, {work}")
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    results: dict[str, dict[str, Any]] = {}
    for kind in ("edge", "local"):
        project = worker.new_project()
        spec: Spec = (
            ("edge", project.url, project.token)
            if kind == "edge"
            else ("local", str(work / f"mail-{time.monotonic_ns()}"), "")
        )
        before = cpu_ticks()
        one = await fan_out(spec, 1, messages, gap_ms=2.0)
        after = cpu_ticks()
        eight = await fan_out(spec, 8, max(messages // 4, 50), gap_ms=5.0)
        lease_before = cpu_ticks()
        rate, grants, bad, client_ms = lease_race(spec, 4, cycles)
        lease_after = cpu_ticks()
        cpu = {k: (after[k] - before.get(k, 0)) * tick_ms / (messages + 1) for k in after}
        lease_cpu = {
            k: (lease_after[k] - lease_before.get(k, 0)) * tick_ms / (4 * cycles)
            for k in lease_after
        }
        lease_cpu["the 4 racers (python)"] = client_ms
        results[kind] = {
            "one": one,
            "eight": eight,
            "leases": (rate, grants, bad),
            "cpu": cpu,
            "lease_cpu": lease_cpu,
        }
    http_rate = await http_lease_cycles(worker.new_project(), 100)
    edge, local = results["edge"], results["local"]

    def both(name: str, run: str, key: str) -> None:
        cells = []
        for r in (edge, local):
            v = r[run][key]
            cells.append(f"p50 {pct(v, 0.5):6.2f} ms  p99 {pct(v, 0.99):6.2f} ms")
        line(name, *cells)

    def losses(run: str) -> None:
        cells = [f"{r[run]['lost']} lost, {r[run]['dupes']} duplicated" for r in (edge, local)]
        line("", *cells)

    both("publish -> handler, 2 processes", "one", "deliveries")
    losses("one")
    both("broadcast to 8 (each delivery)", "eight", "deliveries")
    both("broadcast to 8 (the last of the 8)", "eight", "last_of_all")
    losses("eight")
    (erate, egrants, ebad), (lrate, lgrants, lbad) = edge["leases"], local["leases"]
    line(
        "lease acquire+release, 4 processes",
        f"{erate:7.0f} ops/s ({egrants} grants, {ebad} viol.)",
        f"{lrate:7.0f} ops/s ({lgrants} grants, {lbad} viol.)",
    )
    one = edge["one"]["deliveries"]
    latency_ratio = pct(one, 0.5) / pct(local["one"]["deliveries"], 0.5)
    print(f"ratio edge / mcp-mail: latency p50 {latency_ratio:.1f}x, leases {erate / lrate:.2f}")
    line(
        "lease cycles over HTTP routes, 1 process",
        f"{http_rate:7.0f} ops/s",
        "-",
    )
    for label, key in (("message (publish -> handler)", "cpu"), ("lease cycle", "lease_cpu")):
        cpu = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(edge[key].items()) if v >= 0.005)
        print(f"edge CPU per {label}: {cpu}")
    ok = (
        pct(one, 0.5) <= 10
        and pct(one, 0.99) <= 50
        and erate >= 500
        and ebad == 0
        and edge["one"]["lost"] == edge["one"]["dupes"] == 0
        and edge["eight"]["lost"] == edge["eight"]["dupes"] == 0
    )
    print(
        "targets (p50 <= 10 ms, p99 <= 50 ms, leases >= 500 ops/s, 0 violations, 0 duplicates):",
        "met" if ok else "NOT met",
    )
