"""Child processes for multi-process tests: one helper for every store's races and crashes.

A worker is a plain module-level function whose first argument is a
:class:`ChildLink`; it may be ``async``. It runs in a fresh interpreter
(``spawn``: nothing inherited), so its other arguments must pickle (paths as
strings, :class:`~jetpack.shared.testing.StoreSpec`), and it may live in a test
module: a module that cannot be imported by name (pytest's ``importlib`` mode)
is loaded from its file::

    async def claim_all(link: ChildLink, db_path: str, agent: str) -> list[str]:
        async with BeadsAdapter(db_path) as store:
            await link.ready()  # set up; now wait for the start signal
            claimed = []
            while (task := await store.claim_next(agent)) is not None:
                claimed.append(task.id)
            return claimed

    results = run_children(claim_all, [(db, f"proc-{i}") for i in range(4)])

The parent side is :class:`Child` (one process: start, wait until it is ready,
release it, read what it reports as it goes, stop or SIGKILL it, get its result
or its traceback) and :func:`run_children` (many processes, released together
each time all of them are ready: a barrier, never a clock). Races then start
when every process is set up, however loaded the machine, and tests assert
what happened, not how long it took.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import multiprocessing
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Self

__all__ = ["Child", "ChildError", "ChildLink", "run_children"]

_READY, _GO, _STOP, _REPORT, _RESULT, _ERROR = "ready", "go", "stop", "report", "result", "error"


class ChildError(AssertionError):
    """A child process failed, died, or did not answer in time (carries its traceback)."""


# -- the child's side --------------------------------------------------------------------


class ChildLink:
    """What a worker function gets as its first argument: its line to the parent."""

    def __init__(self, inbox: Connection, outbox: Connection) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._stop = False

    def ready_blocking(self) -> None:
        """Tell the parent this process is set up, then block until it says go."""
        self._outbox.send((_READY, None))
        while True:
            message = self._inbox.recv()  # EOFError if the parent is gone: the child ends
            if message == _GO:
                return
            if message == _STOP:
                self._stop = True
                return

    async def ready(self) -> None:
        """Like :meth:`ready_blocking`, without blocking the event loop while waiting."""
        await asyncio.to_thread(self.ready_blocking)

    def report(self, value: Any) -> None:
        """Send a picklable value to the parent now (it reads them in order)."""
        self._outbox.send((_REPORT, value))

    def stop_requested(self) -> bool:
        """Whether the parent asked this process to finish (never blocks)."""
        while not self._stop and self._inbox.poll(0):
            if self._inbox.recv() == _STOP:
                self._stop = True
        return self._stop

    async def until_stopped(self) -> None:
        """Wait (without polling) until the parent asks this process to finish."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = self._inbox.fileno()
        loop.add_reader(fd, readable.set)
        try:
            while not self.stop_requested():
                readable.clear()
                await readable.wait()
        finally:
            loop.remove_reader(fd)


def _load(module_name: str, path: str | None, qualname: str) -> Callable[..., Any]:
    """Import the worker's module by name if that finds the same file, else load the file."""
    target: Any = None
    with contextlib.suppress(ImportError):
        target = importlib.import_module(module_name)
    if target is None or (path is not None and getattr(target, "__file__", None) != path):
        assert path is not None, f"cannot find module {module_name!r}"
        name = f"_jetpack_child_{abs(hash(path))}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None, path
        target = importlib.util.module_from_spec(spec)
        sys.modules[name] = target
        spec.loader.exec_module(target)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def _child_main(
    where: tuple[str, str | None, str],
    args: tuple[Any, ...],
    inbox: Connection,
    outbox: Connection,
) -> None:
    link = ChildLink(inbox, outbox)
    try:
        fn = _load(*where)
        result = fn(link, *args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except BaseException:
        outbox.send((_ERROR, traceback.format_exc()))
        raise SystemExit(1) from None
    outbox.send((_RESULT, result))


def _where(fn: Callable[..., Any]) -> tuple[str, str | None, str]:
    """How a spawned process finds ``fn``: its module's name and file, and its name in it.

    The child imports the module by name when that finds the same file, and
    loads the file otherwise (a test module under pytest's ``importlib`` mode
    has a name no one else can import).
    """
    qualname = getattr(fn, "__qualname__", "")
    if not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise ValueError(f"{fn!r} is not a module-level function; a child cannot find it")
    module = sys.modules.get(fn.__module__)
    path = getattr(module, "__file__", None)
    if path is None and fn.__module__ == "__main__":
        raise ValueError(f"cannot locate the module of {fn!r} for a child process")
    return fn.__module__, path, qualname


# -- the parent's side -------------------------------------------------------------------


class Child:
    """One worker in its own OS process, driven from the test.

    ``Child(worker, *args).start()``, then :meth:`wait_ready` and :meth:`go` to
    release it (it calls ``link.ready()`` after setting up), :meth:`next_report`
    or :meth:`reports` for what it sends as it goes, :meth:`stop` (it sees
    ``link.stop_requested()``) or :meth:`kill` (SIGKILL), and :meth:`result`
    for its return value (a failure in the child raises :class:`ChildError`
    with its traceback). ``with Child(...) as child:`` starts it and always
    reaps it.
    """

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        self._where = _where(target)
        self._args = args
        self._name = getattr(target, "__name__", "child")
        self._process: Any = None
        self._inbox: Connection | None = None
        self._outbox: Connection | None = None
        self._reports: deque[Any] = deque()
        self._readies = 0
        self._gos = 0
        self._done = False
        self._value: Any = None
        self._error: str | None = None

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        return f"Child({self._name}, pid={pid})"

    def start(self) -> Self:
        """Spawn the process."""
        ctx = multiprocessing.get_context("spawn")
        child_in, to_child = ctx.Pipe(duplex=False)
        from_child, child_out = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_child_main,
            args=(self._where, self._args, child_in, child_out),
            name=f"jetpack-child-{self._name}",
            daemon=True,
        )
        self._process.start()
        child_in.close()
        child_out.close()
        self._inbox, self._outbox = from_child, to_child
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return int(self._process.pid)

    @property
    def exitcode(self) -> int | None:
        """None while it runs; negative for a signal (``-9`` after :meth:`kill`)."""
        return self._process.exitcode  # type: ignore[no-any-return]

    @property
    def waiting(self) -> bool:
        """True while it waits in ``link.ready()`` for :meth:`go`."""
        return self._readies > self._gos

    @property
    def done(self) -> bool:
        """True once its result (or failure) has arrived."""
        return self._done

    # -- messages ---------------------------------------------------------------------

    def _pump(self, deadline: float, waiting_for: str) -> None:
        """Receive one message (or learn that the child is gone) before ``deadline``."""
        assert self._inbox is not None, "start() the child first"
        if not self._inbox.poll(max(deadline - time.monotonic(), 0)):
            raise ChildError(f"{self} sent nothing while we waited for {waiting_for}")
        try:
            kind, value = self._inbox.recv()
        except (EOFError, OSError):
            self._process.join(5)
            self._done = True
            self._error = self._error or f"{self} exited with code {self.exitcode}"
            raise ChildError(f"{self._error} while we waited for {waiting_for}") from None
        if kind == _READY:
            self._readies += 1
        elif kind == _REPORT:
            self._reports.append(value)
        elif kind == _RESULT:
            self._done, self._value = True, value
        else:
            self._done, self._error = True, f"{self} failed:\n{value}"

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until it calls ``link.ready()`` (reports sent before are kept)."""
        deadline = time.monotonic() + timeout
        while not self.waiting:
            if self._done:
                raise ChildError(self._error or f"{self} finished without calling ready()")
            self._pump(deadline, "ready()")

    def _settle(self, deadline: float) -> None:
        """Wait until it is either waiting for go or finished."""
        while not self.waiting and not self._done:
            self._pump(deadline, "ready() or its result")

    def go(self) -> None:
        """Release it from ``link.ready()``."""
        assert self._outbox is not None and self.waiting, f"{self} is not waiting for go()"
        self._gos += 1
        self._outbox.send(_GO)

    def next_report(self, timeout: float = 120) -> Any:
        """The next value it reports (waiting up to ``timeout`` seconds for it)."""
        deadline = time.monotonic() + timeout
        while not self._reports:
            if self._done:
                raise ChildError(self._error or f"{self} finished without reporting more")
            self._pump(deadline, "a report")
        return self._reports.popleft()

    def reports(self) -> list[Any]:
        """Every value it has reported that was not read yet, without waiting.

        Works after :meth:`kill` too: what it sent before dying is still read.
        """
        assert self._inbox is not None, "start() the child first"
        while not self._done and self._inbox.poll(0):
            try:
                self._pump(time.monotonic(), "reports")
            except ChildError:
                break
        found = list(self._reports)
        self._reports.clear()
        return found

    def stop(self) -> None:
        """Ask it to finish (``link.stop_requested()`` turns true)."""
        if self._outbox is not None and self._process.is_alive():
            with contextlib.suppress(OSError):  # it is already gone
                self._outbox.send(_STOP)

    def result(self, timeout: float = 120) -> Any:
        """Its return value; ChildError with its traceback if it failed or died."""
        deadline = time.monotonic() + timeout
        while not self._done:
            if self.waiting:
                raise ChildError(f"{self} waits in ready(): call go() before result()")
            self._pump(deadline, "its result")
        if self._error is not None:
            raise ChildError(self._error)
        self._process.join(max(deadline - time.monotonic(), 1))
        return self._value

    def kill(self) -> int | None:
        """SIGKILL it and wait for it; its exit code (``-9``)."""
        self._process.kill()
        self._process.join(30)
        return self.exitcode

    def close(self) -> None:
        """Reap it: SIGKILL if it still runs, then close the pipes (idempotent)."""
        if self._process is None:
            return
        if self._process.is_alive():
            self._process.join(0.1)
        if self._process.is_alive():
            self.kill()
        for conn in (self._inbox, self._outbox):
            if conn is not None:
                conn.close()
        self._inbox = self._outbox = None


def run_children(
    target: Callable[..., Any], arg_sets: Sequence[tuple[Any, ...]], *, timeout: float = 300
) -> list[Any]:
    """Run ``target(link, *args)`` in one process per argument tuple; their results, in order.

    Every time all unfinished children wait in ``link.ready()``, they are
    released together (so a worker may call it once per round of a race).
    A failure in any child raises :class:`ChildError` with its traceback.
    """
    deadline = time.monotonic() + timeout
    children = [Child(target, *args) for args in arg_sets]
    try:
        for child in children:
            child.start()
        while True:
            for child in children:
                child._settle(deadline)
            failed = [child for child in children if child._error is not None]
            if failed:
                raise ChildError(failed[0]._error)
            waiting = [child for child in children if child.waiting]
            if not waiting:
                break
            for child in waiting:
                child.go()
        return [child.result(max(deadline - time.monotonic(), 1)) for child in children]
    finally:
        for child in children:
            child.close()
