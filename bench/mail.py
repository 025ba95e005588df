"""Benchmark of jetpack-mcp-mail: delivery latency, throughput, lease operations.

    hatch run python bench/mail.py [--messages 2000] [--cycles 500]

Prints publish → handler latency (p50/p99) in one process and across two
processes, publish throughput, and lease acquire+release cycles per second with
8 coroutines (8 agents, one process) and with 4 processes, each checked for
overlap violations by a recorder of grants with fencing tokens. The same lease
transaction in raw sqlite3 (no asyncio, no thread hop, no flock) runs in the
same session for the ratio. Cross-process times use CLOCK_MONOTONIC, which is
one clock for every process on a machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jetpack.mcp_mail import MCPMailAdapter
from jetpack.shared import Message, MessageType
from jetpack.shared.errors import LeaseHeldError
from jetpack.shared.rules import paths_overlap

PATHS = [
    "src/a.py",
    "src/b.py",
    "src/auth/**",
    "src/auth/session.py",
    "src/*.py",
    "docs/*.md",
    "docs/readme.md",
    "tests/test_a.py",
    "tests/**",
    "README.md",
]
Grant = tuple[str, str, int, int, int]  # agent, path, token, from_ns, until_ns


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def violations(grants: list[Grant]) -> int:
    bad = 0
    for x, y in itertools.combinations(grants, 2):
        if x[0] == y[0] or not paths_overlap(x[1], y[1]):
            continue
        first, second = (x, y) if x[2] < y[2] else (y, x)
        if not first[4] < second[3]:
            bad += 1
    return bad


# -- latency ------------------------------------------------------------------------------


async def latency_in_process(mail_dir: Path, n: int) -> list[float]:
    """Ping-style: publish one, wait for the handler, repeat. Milliseconds."""
    got = asyncio.Event()
    arrived: list[int] = []

    def handler(message: Message) -> None:
        arrived.append(time.monotonic_ns())
        got.set()

    samples: list[float] = []
    async with MCPMailAdapter("pub", mail_dir) as pub, MCPMailAdapter("sub", mail_dir) as sub:
        sub.subscribe(MessageType.TASK_PROGRESS, handler)
        await asyncio.sleep(0.05)
        for i in range(n):
            got.clear()
            start = time.monotonic_ns()
            await pub.publish(MessageType.TASK_PROGRESS, {"i": i})
            await got.wait()
            samples.append((arrived[-1] - start) / 1e6)
    return samples


async def child_subscriber(mail_dir: str, out: str, ready: str) -> None:
    """Record (receive_ns - payload t) per message until a ``done`` message."""
    deltas: list[float] = []
    done = asyncio.Event()
    first_last: list[int] = []

    def handler(message: Message) -> None:
        now = time.monotonic_ns()
        if message.payload.get("done"):
            done.set()
            return
        first_last.append(now)
        deltas.append((now - message.payload["t"]) / 1e6)

    bus = MCPMailAdapter("child-sub", mail_dir)
    bus.subscribe("*", handler)
    async with bus:
        Path(ready).write_text("ok")  # noqa: ASYNC240 - tiny, once
        await done.wait()
    Path(out).write_text(  # noqa: ASYNC240 - once, at the end
        json.dumps({"deltas": deltas, "last_ns": first_last[-1] if first_last else 0})
    )


def spawn_subscriber(mail_dir: Path, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    out, ready = tmp / f"{name}.json", tmp / f"{name}.ready"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", "sub", str(mail_dir), str(out), str(ready)]
    )
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit("subscriber died")
        time.sleep(0.01)
    return proc, out


async def latency_cross_process(mail_dir: Path, tmp: Path, n: int, gap_ms: float) -> list[float]:
    """Paced one-way sends to a subscriber in another process. Milliseconds."""
    proc, out = spawn_subscriber(mail_dir, tmp, "latency")
    async with MCPMailAdapter("pub", mail_dir) as pub:
        for i in range(n):
            await pub.publish(MessageType.TASK_PROGRESS, {"i": i, "t": time.monotonic_ns()})
            await asyncio.sleep(gap_ms / 1000)
        await pub.publish(MessageType.TASK_PROGRESS, {"done": True})
    proc.wait(timeout=60)
    deltas: list[float] = json.loads(out.read_text())["deltas"]
    assert len(deltas) == n, f"lost messages: {len(deltas)} of {n}"
    return deltas


async def throughput(mail_dir: Path, tmp: Path, n: int) -> tuple[float, float]:
    """Burst of n publishes: publish rate, and delivery rate into another process (msg/s)."""
    proc, out = spawn_subscriber(mail_dir, tmp, "burst")
    async with MCPMailAdapter("pub", mail_dir) as pub:
        start = time.monotonic_ns()
        for i in range(n):
            await pub.publish(MessageType.TASK_PROGRESS, {"i": i, "t": time.monotonic_ns()})
        published = time.monotonic_ns()
        await pub.publish(MessageType.TASK_PROGRESS, {"done": True})
    proc.wait(timeout=60)
    result = json.loads(out.read_text())
    assert len(result["deltas"]) == n
    return n / ((published - start) / 1e9), n / ((result["last_ns"] - start) / 1e9)


# -- leases ---------------------------------------------------------------------------------


async def lease_cycles(bus: MCPMailAdapter, cycles: int, offset: int) -> tuple[int, list[Grant]]:
    grants: list[Grant] = []
    for i in range(cycles):
        path = PATHS[(i * 3 + offset) % len(PATHS)]
        try:
            lease = await bus.grant_lease(path, 10_000)
        except LeaseHeldError:
            continue
        held_from = time.monotonic_ns()
        held_until = time.monotonic_ns()
        await bus.release_lease(path)
        grants.append((bus.agent_id, path, lease.fencing_token, held_from, held_until))
    return cycles, grants


async def leases_coroutines(mail_dir: Path, workers: int, cycles: int) -> tuple[float, int, int]:
    buses = [MCPMailAdapter(f"co-{i}", mail_dir) for i in range(workers)]
    for bus in buses:
        await bus.initialize()
    try:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(lease_cycles(bus, cycles, i) for i, bus in enumerate(buses))
        )
        elapsed = time.perf_counter() - start
    finally:
        for bus in buses:
            await bus.shutdown()
    grants = [g for _, found in results for g in found]
    return workers * cycles / elapsed, len(grants), violations(grants)


async def child_leases(mail_dir: str, agent: str, cycles: int, start_at: float, out: str) -> None:
    async with MCPMailAdapter(agent, mail_dir) as bus:
        await asyncio.sleep(max(start_at - time.time(), 0))
        start = time.monotonic_ns()
        _, grants = await lease_cycles(bus, cycles, sum(map(ord, agent)))
        end = time.monotonic_ns()
    result = json.dumps({"grants": grants, "start": start, "end": end})
    Path(out).write_text(result)  # noqa: ASYNC240 - once, at the end


def raw_lease_cycles(db: str, agent: str, cycles: int, offset: int) -> list[Grant]:
    """The same acquire/release transactions in plain sqlite3 (busy timeout, no flock)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    grants: list[Grant] = []
    for i in range(cycles):
        path = PATHS[(i * 3 + offset) % len(PATHS)]
        now = time.time_ns() // 1_000_000
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
        rows = conn.execute(
            "SELECT path, exclusive FROM leases WHERE agent_id != ?", (agent,)
        ).fetchall()
        if any(paths_overlap(p, path) for p, _ in rows):
            conn.execute("COMMIT")
            continue
        conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'fencing'")
        token = conn.execute("SELECT value FROM counters WHERE name = 'fencing'").fetchone()[0]
        conn.execute(
            "INSERT OR REPLACE INTO leases VALUES (?, ?, 1, ?, ?, ?)",
            (path, agent, now, now + 10_000, token),
        )
        conn.execute("COMMIT")
        held = time.monotonic_ns()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM leases WHERE path = ? AND agent_id = ?", (path, agent))
        conn.execute("COMMIT")
        grants.append((agent, path, token, held, held))
    conn.close()
    return grants


def child_raw(db: str, agent: str, cycles: int, start_at: float, out: str) -> None:
    time.sleep(max(start_at - time.time(), 0))
    start = time.monotonic_ns()
    grants = raw_lease_cycles(db, agent, cycles, sum(map(ord, agent)))
    end = time.monotonic_ns()
    Path(out).write_text(json.dumps({"grants": grants, "start": start, "end": end}))


def run_processes(
    mode: str, target: Path, tmp: Path, procs: int, cycles: int
) -> tuple[float, int, int]:
    start_at = time.time() + 1.5
    outs = [tmp / f"{mode}-{i}.json" for i in range(procs)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                str(target),
                f"{mode}-p{i}",
                str(cycles),
                str(start_at),
                str(out),
            ]
        )
        for i, out in enumerate(outs)
    ]
    for child in children:
        if child.wait(timeout=300) != 0:
            raise SystemExit(f"{mode} worker failed")
    data = [json.loads(out.read_text()) for out in outs]
    elapsed = (max(d["end"] for d in data) - min(d["start"] for d in data)) / 1e9
    grants = [tuple(g) for d in data for g in d["grants"]]
    return procs * cycles / elapsed, len(grants), violations(grants)  # type: ignore[arg-type]


# -- main -----------------------------------------------------------------------------------


async def main(messages: int, cycles: int) -> None:
    with tempfile.TemporaryDirectory(prefix="jetpack-mail-bench-") as raw_tmp:
        tmp = Path(raw_tmp)
        print(f"jetpack-mcp-mail bench: {messages} messages, {cycles} lease cycles per worker")
        version = sys.version.split()[0]
        print(f"python {version}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs")
        print()

        lat = await latency_in_process(tmp / "lat1", messages)
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
        print(f"latency, one process (ping):      p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
        cross = await latency_cross_process(tmp / "lat2", tmp, messages, gap_ms=2.0)
        p50, p99, mean = pct(cross, 0.5), pct(cross, 0.99), statistics.fmean(cross)
        print(
            f"latency, two processes (paced):   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
            f"   mean {mean:.2f} ms"
        )
        pub_rate, deliver_rate = await throughput(tmp / "tput", tmp, messages)
        print(
            f"throughput: publish {pub_rate:8.0f} msg/s;"
            f" delivered to another process {deliver_rate:8.0f} msg/s"
        )
        print()

        rate8, grants8, bad8 = await leases_coroutines(tmp / "co8", 8, cycles)
        print(
            f"leases, 8 coroutines, 1 process:  {rate8:7.0f} acquire+release cycles/s "
            f"({grants8} grants, {bad8} violations)"
        )
        async with MCPMailAdapter("setup", tmp / "p4"):
            pass
        rate4, grants4, bad4 = run_processes("leases", tmp / "p4", tmp, 4, cycles)
        print(
            f"leases, 4 processes:              {rate4:7.0f} acquire+release cycles/s "
            f"({grants4} grants, {bad4} violations)"
        )

        async with MCPMailAdapter("setup", tmp / "raw1") as setup:
            raw_db = str(setup.db_path)
        start = time.perf_counter()
        raw_grants = raw_lease_cycles(raw_db, "raw-0", 8 * cycles, 0)
        raw1 = 8 * cycles / (time.perf_counter() - start)
        print(f"raw sqlite3, 1 process, sync:     {raw1:7.0f} cycles/s ({len(raw_grants)} grants)")
        async with MCPMailAdapter("setup", tmp / "raw4") as setup:
            raw4_db = setup.db_path
        raw4, rgrants4, rbad4 = run_processes("raw", raw4_db, tmp, 4, cycles)
        print(
            f"raw sqlite3, 4 processes:         {raw4:7.0f} cycles/s "
            f"({rgrants4} grants, {rbad4} violations)"
        )
        print()
        print(f"ratio bus/raw, 1 process: {rate8 / raw1:.2f}   4 processes: {rate4 / raw4:.2f}")
        ok = (
            pct(cross, 0.5) <= 5
            and pct(cross, 0.99) <= 50
            and rate4 >= 2000
            and bad4 == 0
            and bad8 == 0
        )
        print(
            "targets (cross p50 <= 5 ms, p99 <= 50 ms, >= 2000 lease ops/s, 0 violations):",
            "met" if ok else "NOT met",
        )


def child(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "sub":
        asyncio.run(child_subscriber(args[0], args[1], args[2]))
    elif mode == "leases":
        asyncio.run(child_leases(args[0], args[1], int(args[2]), float(args[3]), args[4]))
    else:
        child_raw(args[0], args[1], int(args[2]), float(args[3]), args[4])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--messages", type=int, default=2000)
        parser.add_argument("--cycles", type=int, default=500)
        ns = parser.parse_args()
        asyncio.run(main(ns.messages, ns.cycles))
