"""Spawn short processes the way the executors do while another thread embeds without pause.

Usage: python spawn_while_embedding.py SPAWNS [CONCURRENCY]

Run as its own process by the tests, which bound it with a timeout: before the
fix, a ``fork()`` (forced by ``preexec_fn``) while the embedder's OpenBLAS pool
was busy hung the process forever. Prints one JSON line: spawns, embeds,
seconds, failures.
"""

import asyncio
import json
import sys
import threading
import time

from jetpack.cli._process import run_process
from jetpack.shared.embedders import LocalEmbedder

TEXTS = [
    f"Completed task bd-{i} 'Refactor module {i}': edited src/mod_{i}.py and ran the tests"
    for i in range(64)
]


def embed_forever(
    embedder: LocalEmbedder, busy: threading.Event, stop: threading.Event, counts: list[int]
) -> None:
    busy.set()
    while not stop.is_set():
        embedder.embed_sync(TEXTS)
        counts[0] += 1


async def spawn(n: int, concurrency: int) -> list[str]:
    failures: list[str] = []
    left = iter(range(n))

    async def worker() -> None:
        for i in left:
            result = await run_process(["/bin/sh", "-c", f"exit $(( {i} % 2 * 0 ))"], timeout_s=60)
            if not result.ok:
                failures.append(f"spawn {i}: exit {result.exit_code} {result.spawn_error or ''}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def main() -> None:
    spawns = int(sys.argv[1])
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    embedder = LocalEmbedder()
    embedder.embed_sync(TEXTS[:1])  # load the weights first
    busy, stop = threading.Event(), threading.Event()
    counts = [0]
    thread = threading.Thread(
        target=embed_forever, args=(embedder, busy, stop, counts), daemon=True
    )
    started = time.monotonic()
    thread.start()
    busy.wait()
    failures = asyncio.run(spawn(spawns, concurrency))
    stop.set()
    thread.join(timeout=60)
    report = {
        "spawns": spawns,
        "embeds": counts[0],
        "seconds": round(time.monotonic() - started, 2),
        "failures": failures,
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
