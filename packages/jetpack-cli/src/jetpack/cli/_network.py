"""Which stores answer: a store that stops answering is said once, and once when it is back.

The stores' own clients retry a failed request a few times (the edge client with
jittered back-off); what still fails reaches the run as
:class:`~jetpack.shared.errors.UnavailableError`. :class:`Reachability` turns
those into two events per outage — ``offline`` when the first call to a store
fails, ``online`` when a call succeeds again — instead of a line per retry.
While the task store is down the agents claim nothing (they wait in
:meth:`Reachability.wait_up`), running attempts go on, and the outcomes they
could not report are sent again with the same idempotency key until the store
takes them (:meth:`Reachability.persist`). A probe (one cheap read with
back-off) notices the store is back when nothing else is calling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jetpack.shared import repeatable
from jetpack.shared.errors import JetpackError, UnavailableError

__all__ = ["REPORT_BACKOFF_MAX_S", "Reachability"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPORT_BACKOFF_MAX_S = 10.0
"""The longest wait between two tries of a report (or of the probe)."""
REPORT_BACKOFF_BASE_S = 0.25
_NAMES = {"tasks": "task store", "mail": "mail bus", "memory": "memory store"}


class Reachability:
    """Up/down state of the stores of one run (``tasks``, ``mail``, ``memory``).

    ``emit(kind, text)`` records the run's ``offline``/``online`` events.
    """

    def __init__(self, emit: Callable[[str, str], None]) -> None:
        self._emit = emit
        self._down: dict[str, float] = {}
        self._up: dict[str, asyncio.Event] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self.outages: dict[str, int] = {}
        """How many times each store went down (tests, the summary)."""

    def is_up(self, store: str) -> bool:
        """False from a store's first failed call until a call succeeds again."""
        return store not in self._down

    def failed(self, store: str, exc: BaseException) -> None:
        """A call to ``store`` could not reach it (said once per outage)."""
        if store in self._down:
            return
        self._down[store] = time.monotonic()
        self.outages[store] = self.outages.get(store, 0) + 1
        self._event(store).clear()
        text = f"the {_NAMES.get(store, store)} does not answer ({exc}); waiting for it"
        logger.warning("%s", text)
        self._emit("offline", text)

    def answered(self, store: str) -> None:
        """A call to ``store`` succeeded (says it is back, once, if it was down)."""
        since = self._down.pop(store, None)
        if since is None:
            return
        self._event(store).set()
        text = (
            f"the {_NAMES.get(store, store)} answers again (after {time.monotonic() - since:.1f}s)"
        )
        logger.warning("%s", text)
        self._emit("online", text)

    async def wait_up(self, store: str) -> None:
        """Return once ``store`` answers again (at once if it is up)."""
        if self.is_up(store):
            return
        await self._event(store).wait()

    def _event(self, store: str) -> asyncio.Event:
        event = self._up.get(store)
        if event is None:
            event = self._up[store] = asyncio.Event()
            event.set()
        return event

    # ------------------------------------------------------------------ calls
    async def call(self, store: str, call: Awaitable[T]) -> T:
        """Await one store call, noting whether the store answered."""
        try:
            result = await call
        except UnavailableError as exc:
            self.failed(store, exc)
            raise
        except JetpackError:  # a refusal is an answer
            self.answered(store)
            raise
        self.answered(store)
        return result

    async def quietly(self, store: str, call: Awaitable[T]) -> T | None:
        """A best-effort call: errors are logged (an outage once), never raised (None instead)."""
        try:
            return await self.call(store, call)
        except UnavailableError:
            return None
        except JetpackError as exc:
            logger.warning("%s store call failed: %s", store, exc)
        except Exception:
            logger.exception("%s store call failed", store)
        return None

    async def persist(self, store: str, scope: str, make: Callable[[], Awaitable[T]]) -> T:
        """Call until the store answers: a report that must not be lost to an outage.

        Every try sends the same request with the same idempotency key
        (:func:`jetpack.shared.repeatable` with ``scope``), so a try whose answer
        was lost is answered, not applied twice. Errors other than an outage raise.
        """
        delay = REPORT_BACKOFF_BASE_S
        with repeatable(scope):
            while True:
                try:
                    return await self.call(store, make())
                except UnavailableError:
                    await asyncio.sleep(delay)
                    delay = min(REPORT_BACKOFF_MAX_S, delay * 2)

    def probe(self, store: str, read: Callable[[], Awaitable[Any]]) -> None:
        """While ``store`` is down, try ``read`` with back-off until it answers (one probe each)."""
        if self.is_up(store) or store in self._probes:
            return

        async def run() -> None:
            delay = REPORT_BACKOFF_BASE_S * 4
            try:
                while not self.is_up(store):
                    await asyncio.sleep(delay)
                    delay = min(REPORT_BACKOFF_MAX_S, delay * 2)
                    with contextlib.suppress(UnavailableError):
                        await self.call(store, read())
            except Exception:  # a probe must never take the run down
                logger.exception("probing the %s store failed", store)
            finally:
                self._probes.pop(store, None)

        self._probes[store] = asyncio.create_task(run(), name=f"jetpack-probe-{store}")

    async def close(self) -> None:
        """Stop the probes."""
        probes = list(self._probes.values())
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        self._probes.clear()
