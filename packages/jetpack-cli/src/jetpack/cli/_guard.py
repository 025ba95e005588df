"""Ctrl+C and SIGTERM for ``jetpack start``, handled outside the event loop, with deadlines.

A signal handler that runs on the event loop (``loop.add_signal_handler``) does
nothing while the loop is stuck, and an interpreter whose worker thread never
returns never exits. :class:`RunGuard` makes the stop sequence hold anyway:

- the C-level signal handler writes each signal's number to a pipe
  (``signal.set_wakeup_fd``); a daemon thread reads it, so a signal is seen
  whatever the main thread is doing;
- the first SIGINT or SIGTERM asks the run to stop (no new claims; running
  attempts get ``shutdown_grace_s``, then their process groups are killed with
  ``kill_grace_s`` of SIGTERM before SIGKILL, and their tasks are handed back);
- the second asks it to stop now (kill the running attempts, hand them back);
- a third, or a signal outside a run, ends the process at once;
- each request arms a deadline (``shutdown_grace_s + kill_grace_s`` after the
  first, ``kill_grace_s`` after the second, plus a few seconds for the hand-back);
  if the process is still alive then, the thread SIGKILLs every process group
  the run started and ends the process with ``os._exit``. Tasks whose hand-back
  did not happen are recovered from their lapsed claims by the next run;
- once the run is over, the process gets ``exit_margin_s`` to exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from asyncio import AbstractEventLoop
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, NoReturn

from jetpack.cli._process import kill_live_groups

__all__ = ["RunGuard"]

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a run (SIGTERM exactly as Ctrl+C)."""


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Python-level handler: the guard's thread does the work (see the module docstring)."""


class RunGuard:
    """Stop requests and exit deadlines of one ``jetpack start`` process (use as ``with``)."""

    def __init__(
        self,
        *,
        grace_s: float,
        kill_grace_s: float,
        margin_s: float = 5.0,
        exit_margin_s: float = 15.0,
    ) -> None:
        self.grace_s = grace_s
        self.kill_grace_s = kill_grace_s
        self.margin_s = margin_s
        self.exit_margin_s = exit_margin_s
        self.exit_code = 1
        """Exit status of a forced exit when no signal was received."""
        self.signals = 0
        self._loop: AbstractEventLoop | None = None
        self._on_signal: Callable[[int], None] | None = None
        self._deadline: float | None = None
        self._why = ""
        self._lock = threading.Lock()
        self._read_fd = -1
        self._write_fd = -1
        self._old_wakeup = -1
        self._old_handlers: dict[int, Any] = {}
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- with-block
    def __enter__(self) -> RunGuard:
        """Install the handlers (main thread only) and start the watcher thread."""
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._old_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in SIGNALS:
            self._old_handlers[sig] = signal.signal(sig, _ignore)
        self._thread = threading.Thread(target=self._watch, name="jetpack-guard", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Restore the handlers; from now on the process has ``exit_margin_s`` to end."""
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._old_wakeup)
        self.detach()
        self._arm(self.exit_margin_s, "the process did not exit after the run")
        os.close(self._write_fd)  # the thread sees EOF, then only waits for the deadline

    # ------------------------------------------------------------ the run
    def attach(self, loop: AbstractEventLoop, on_signal: Callable[[int], None]) -> None:
        """Deliver signals to ``on_signal(count)`` on ``loop`` (1: stop, 2: stop now)."""
        with self._lock:
            self._loop, self._on_signal = loop, on_signal

    def detach(self) -> None:
        """The run is over: a signal now ends the process at once."""
        with self._lock:
            self._loop, self._on_signal = None, None

    @property
    def signalled(self) -> bool:
        """True once SIGINT or SIGTERM was received."""
        return self.signals > 0

    # ------------------------------------------------------------ internals
    def _arm(self, seconds: float, why: str) -> None:
        with self._lock:
            deadline = time.monotonic() + seconds
            if self._deadline is None or deadline < self._deadline:
                self._deadline, self._why = deadline, why

    def _watch(self) -> None:
        fd: int | None = self._read_fd
        while True:
            with self._lock:
                deadline = self._deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if fd is None:
                time.sleep(1.0 if timeout is None else min(timeout, 1.0))
                ready = False
            else:
                ready = bool(select.select([fd], [], [], timeout)[0])
            if ready and fd is not None:
                data = os.read(fd, 64)
                if not data:  # the guard was closed
                    os.close(fd)
                    fd = None
                for signum in data:
                    self._signal(signum)
            elif deadline is not None and time.monotonic() >= deadline:
                self._force_exit(self._why)

    def _signal(self, signum: int) -> None:
        self.signals += 1
        count = self.signals
        with self._lock:
            loop, handler = self._loop, self._on_signal
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        if loop is None or handler is None or count >= 3:
            self._force_exit(f"{name} received {'again' if count > 1 else 'outside a run'}")
        if count == 1:
            self._arm(
                self.grace_s + self.kill_grace_s + self.margin_s,
                f"the run did not stop within {self.grace_s + self.kill_grace_s:g}s of {name}",
            )
        else:
            self._arm(
                self.kill_grace_s + self.margin_s,
                f"the run did not stop within {self.kill_grace_s:g}s of a second {name}",
            )
        try:
            loop.call_soon_threadsafe(handler, count)
        except RuntimeError:  # the loop is closed
            self._force_exit(f"{name} received after the run")

    def _force_exit(self, why: str) -> NoReturn:
        killed = kill_live_groups()
        code = 130 if self.signalled else self.exit_code
        message = f"jetpack: {why}; exiting now"
        if killed:
            message += f" (killed {killed} running process group{'s' if killed > 1 else ''})"
        with contextlib.suppress(OSError):
            os.write(2, (message + "\n").encode())
        os._exit(code)
