"""Batched memory writes, off the agents' critical path.

What an attempt taught is recorded after its task is completed or failed, so it
never decides the task's fate. Agents queue entries here; one background task
writes them with ``store_many`` (one transaction, one embedding batch), at most
``batch`` at a time or every ``delay_s``. If a batch is refused (all or none),
its entries are retried one by one so that one bad entry loses only itself.
``close`` writes what is left, within a time limit: a run's shutdown never
waits unboundedly on an embedder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from jetpack.shared import MemoryStore

__all__ = ["MemoryWriter"]

logger = logging.getLogger(__name__)


class MemoryWriter:
    """Queues memory entries and writes them in batches."""

    def __init__(self, store: MemoryStore, *, batch: int = 32, delay_s: float = 0.2) -> None:
        self.store = store
        self.batch = batch
        self.delay_s = delay_s
        self.written = 0
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def add(self, entry: dict[str, Any]) -> None:
        """Queue one entry (a MemoryInput mapping)."""
        self._pending.append(entry)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        if len(self._pending) >= self.batch:
            self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.delay_s)
            self._wake.clear()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far."""
        while self._pending:
            entries = self._pending[: self.batch]
            try:
                await self.store.store_many(entries)
            except Exception as exc:
                logger.warning(
                    "memory batch of %d refused (%s); storing one by one", len(entries), exc
                )
                del self._pending[: len(entries)]
                for entry in entries:
                    try:
                        await self.store.store(entry)
                        self.written += 1
                    except Exception as one:
                        logger.warning("memory entry dropped: %s", one)
            else:
                self.written += len(entries)
                del self._pending[: len(entries)]

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is left and stop; after ``timeout_s`` give up (the rest is logged, lost)."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self.flush())
        task, self._task = self._task, None
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            logger.warning(
                "memory store did not answer within %.0fs; %d memories not written",
                timeout_s,
                len(self._pending),
            )
