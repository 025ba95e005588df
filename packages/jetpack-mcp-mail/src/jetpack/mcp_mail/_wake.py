"""Cross-process wake-ups over Unix datagram sockets.

Each open bus binds one datagram socket and records its address in the
``listeners`` table. A writer, right after committing a message, sends a
one-byte datagram to every listed address; the receiving bus's event loop
wakes (``loop.add_reader``, no thread, no polling) and reads the new rows.

On Linux the sockets live in the abstract namespace (no file, no path-length
limit, gone when the process dies); elsewhere they are files in the temp
folder. Where neither works the bus falls back to polling alone. A datagram
is only a hint: a lost one costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sys
import tempfile

__all__ = ["Notifier", "WakeListener"]

logger = logging.getLogger(__name__)

_ABSTRACT_PREFIX = "@"
_DEAD = (ConnectionRefusedError, FileNotFoundError, NotADirectoryError)


def _to_sockaddr(address: str) -> str:
    """Stored ``@name`` → the abstract address (a leading NUL byte); a path stays a path."""
    if address.startswith(_ABSTRACT_PREFIX):
        return "\0" + address[1:]
    return address


class WakeListener:
    """The receiving end: a bound datagram socket that sets :attr:`event`."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.address: str | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._path: str | None = None

    def start(self) -> str | None:
        """Bind and start listening; return the address to register, or None (polling only)."""
        if not hasattr(socket, "AF_UNIX"):  # pragma: no cover - Windows
            return None
        token = secrets.token_hex(8)
        if sys.platform.startswith("linux"):
            address = f"{_ABSTRACT_PREFIX}jetpack-mail/{os.getpid()}/{token}"
        else:  # pragma: no cover - exercised on macOS/BSD only
            address = os.path.join(tempfile.gettempdir(), f"jpm-{token}.sock")
            self._path = address
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError:  # pragma: no cover - no datagram support
            logger.warning("no Unix datagram sockets here; mail falls back to polling")
            return None
        try:
            sock.setblocking(False)
            sock.bind(_to_sockaddr(address))
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(sock.fileno(), self._on_readable)
        except OSError:  # pragma: no cover - e.g. a read-only temp folder
            sock.close()
            logger.warning("could not bind a wake-up socket; mail falls back to polling")
            return None
        self._sock = sock
        self.address = address
        return address

    def _on_readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                self._sock.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # pragma: no cover - socket closed under us
                break
        self.event.set()

    def close(self) -> None:
        """Stop listening and free the address (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        if self._path is not None:  # pragma: no cover - non-Linux only
            with contextlib.suppress(OSError):
                os.unlink(self._path)


class Notifier:
    """The sending end, used on the database thread right after a commit."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        if hasattr(socket, "AF_UNIX"):
            with contextlib.suppress(OSError):
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)

    def poke(self, addresses: list[str]) -> list[str]:
        """Wake every address; return those that nobody listens on any more."""
        dead: list[str] = []
        if self._sock is None:  # pragma: no cover - Windows
            return dead
        for address in addresses:
            try:
                self._sock.sendto(b"!", _to_sockaddr(address))
            except BlockingIOError:
                pass  # its queue is full: it has wake-ups pending already
            except _DEAD:
                dead.append(address)
            except OSError as exc:  # pragma: no cover - unexpected, but only a hint
                logger.debug("wake-up to %s failed: %s", address, exc)
        return dead

    def close(self) -> None:
        """Close the sending socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
