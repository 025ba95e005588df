"""Child process for the multi-process tests (run as a script, never imported by pytest).

Usage: python beads_worker.py MODE DB_PATH AGENT [ARG]
  claim   open, print "ready", wait for a line on stdin, then claim_next until the
          queue is empty; print the claimed ids as one JSON list
  hold    claim_next once with ttl_ms=ARG, print the id, then sleep (to be SIGKILLed)
  create  create batches of 10 tasks forever, printing the running total after each commit
"""

import asyncio
import json
import sys

from jetpack.beads import BeadsAdapter


async def main(mode: str, db_path: str, agent: str, arg: str) -> None:
    async with BeadsAdapter(db_path) as store:
        if mode == "claim":
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)  # all start together
            claimed = []
            while (task := await store.claim_next(agent)) is not None:
                claimed.append(task.id)
            print(json.dumps(claimed), flush=True)
        elif mode == "hold":
            task = await store.claim_next(agent, ttl_ms=int(arg))
            print(task.id if task else "", flush=True)
            await asyncio.sleep(3600)
        elif mode == "create":
            total = 0
            while True:
                await store.create_tasks([{"title": f"{agent}-{total + i}"} for i in range(10)])
                total += 10
                print(total, flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
